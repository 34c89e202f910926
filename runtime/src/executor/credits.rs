//! A model call's credits: reserved (its worst case) before the call, charged (what it cost)
//! after, each through the organization's account. A run whose organization's balance cannot
//! cover its next call pauses at that step boundary (`run.paused`, status `awaiting_credits`),
//! holding nothing, and is woken by the runs service once credits arrive.
//!
//! A call refused only because other runs hold credits for calls under way (the balance itself
//! covers it) waits for them to be charged rather than pausing: most of a hold comes back when
//! its call is charged, so a run is never paused while the balance covers it, unless the holds
//! last longer than [`ExecutorSettings::credit_wait`](super::ExecutorSettings).

use std::time::{Duration, Instant};

use commands::billing::{BillingService, ReserveOutcome};
use commands::runs::{RunsError, llm_call_key};
use domain::run::{Run, RunCommand};

use super::run_loop::{Execution, ExecutionError, Executor, Outcome};
use crate::llm::ChatRequest;

/// The shortest and longest pause between two reservation attempts while other runs' holds
/// keep the credits a call needs (jittered, so waiting runs do not retry in step).
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(120);

/// Why a run pauses, as `run.paused` names it.
const INSUFFICIENT_CREDITS: &str = "insufficient_credits";

impl Executor {
    /// Whether a run waiting for credits may go on: its organization's available credits cover
    /// what its next call needs. Checked before taking the run, so a run woken in error (or
    /// dispatched at a restart) records nothing.
    pub(super) async fn credits_cover(&self, run: &Run) -> Result<bool, ExecutionError> {
        let (Some(billing), Some(org_id)) = (self.service().billing(), run.org_id()) else {
            return Ok(true);
        };
        let needed = i64::try_from(run.credits_needed().unwrap_or(1)).unwrap_or(i64::MAX);
        let account = billing.account(org_id).await.map_err(RunsError::from)?;
        Ok(account.available() >= needed)
    }
}

impl Execution<'_> {
    /// Reserves the worst case of the model call of the run's open step before it is made.
    /// `Some` when the execution must stop: the run paused for credits, or it moved on without
    /// this executor (cancelled, taken over) meanwhile.
    pub(super) async fn reserve_credits(
        &mut self,
        request: &ChatRequest,
    ) -> Result<Option<Outcome>, ExecutionError> {
        let (Some(billing), Some(org_id), Some(step)) = (
            self.executor.service().billing(),
            self.run.org_id(),
            self.run.open_model_call(),
        ) else {
            return Ok(None);
        };
        let key = llm_call_key(self.run_id, step);
        let max_output = request
            .max_output_tokens
            .unwrap_or(self.executor.settings().default_max_output_tokens);
        let worst_case = self.executor.settings().prices.worst_case(
            &request.model,
            request.prompt_token_bound(),
            max_output,
        );
        let mut context = self.context.clone();
        context.causation_id = self.llm_call_started;
        let waiting_since = Instant::now();
        loop {
            let outcome = billing
                .reserve(org_id, self.run_id, &key, worst_case, &context)
                .await
                .map_err(RunsError::from)?;
            let ReserveOutcome::Insufficient { available, requested } = outcome else {
                return Ok(None);
            };
            if self.balance_covers(billing, org_id, requested).await?
                && waiting_since.elapsed() < self.executor.settings().credit_wait
            {
                let pause = jittered_pause();
                tokio::select! {
                    () = self.cancel.cancelled() => return Ok(Some(Outcome::LetGo)),
                    () = tokio::time::sleep(pause) => continue,
                }
            }
            let detail = format!(
                "the next model call may cost up to {requested} credits and {available} are available; \
                 the run goes on by itself once credits are added"
            );
            let paused = self
                .record(RunCommand::Pause {
                    executor: self.executor.id(),
                    reason: INSUFFICIENT_CREDITS.to_owned(),
                    detail,
                    credits_needed: requested,
                    credits_available: available,
                })
                .await?;
            return Ok(Some(if paused {
                Outcome::AwaitingCredits
            } else {
                Outcome::LetGo
            }));
        }
    }

    /// Charges the model call of `step` what it cost (the credits the run just recorded for it)
    /// and releases the rest of its hold. A failure here loses nothing: whatever the run still
    /// holds is settled, with what it recorded, when it ends.
    pub(super) async fn settle_credits(&self, step: u32, credits: u64, tokens_counted: bool) {
        let (Some(billing), Some(org_id)) = (self.executor.service().billing(), self.run.org_id()) else {
            return;
        };
        let mut context = self.context.clone();
        context.causation_id = self.llm_call_completed;
        let key = llm_call_key(self.run_id, step);
        if let Err(error) = billing
            .settle(org_id, &key, credits, tokens_counted, &context)
            .await
        {
            tracing::warn!(%error, run = %self.run_id, step, "charge not recorded now; it is when the run ends");
        }
    }

    async fn balance_covers(
        &self,
        billing: &BillingService,
        org_id: uuid::Uuid,
        requested: u64,
    ) -> Result<bool, ExecutionError> {
        let account = billing.account(org_id).await.map_err(RunsError::from)?;
        Ok(account.balance() >= i64::try_from(requested).unwrap_or(i64::MAX))
    }
}

/// A pause between [`RETRY_MIN`] and [`RETRY_MAX`], spread by the clock's nanoseconds (enough
/// to keep waiting runs out of step; no randomness needed).
fn jittered_pause() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or_default();
    let span = (RETRY_MAX - RETRY_MIN).as_millis() as u32;
    RETRY_MIN + Duration::from_millis(u64::from(nanos % span.max(1)))
}
