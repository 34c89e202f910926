//! A model call's credits: reserved (its worst case) before the call, charged (what it cost)
//! after, each through the organization's account. A run whose organization's balance cannot
//! cover its next call pauses at that step boundary (`run.paused`, status `awaiting_credits`),
//! holding nothing, and is woken by the runs service once credits arrive.
//!
//! A call refused only because other runs hold credits for calls under way (the balance itself
//! covers it) waits for them to be charged rather than pausing: most of a hold comes back when
//! its call is charged, so a run is never paused while the balance covers it, unless the holds
//! last longer than [`ExecutorSettings::credit_wait`](super::ExecutorSettings).

use std::sync::Arc;
use std::time::{Duration, Instant};

use commands::billing::{BillingService, Reservation, ReserveOutcome};
use commands::runs::{CallCharge, CallHold, RunService, RunsError, llm_call_key};
use domain::credit_account::CallPrice;
use domain::run::{Run, RunCommand};
use eventstore::{CommandContext, CommandError};
use uuid::Uuid;

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

/// What a model call's hold on the ledger needs, computed before the call and owned, so the
/// reservation can go to the ledger while the call's `llm_call.started` is recorded.
pub(super) struct Hold {
    billing: Arc<BillingService>,
    org_id: Uuid,
    run_id: Uuid,
    key: String,
    worst_case: u64,
    price: CallPrice,
    context: CommandContext,
}

impl Hold {
    /// When `existing` (the ledger's answer for this call's key) holds less than this hold's
    /// worst case and is still open: the hold of the difference, under the key with `+`
    /// appended. An existing hold is smaller only when another executor built it from a tool
    /// result that was never recorded (see [`Self::take_hold`]'s caller).
    fn short_by(&self, existing: &Reservation) -> Option<Hold> {
        if existing.settled.is_some() || existing.credits >= self.worst_case {
            return None;
        }
        Some(Hold {
            billing: Arc::clone(&self.billing),
            org_id: self.org_id,
            run_id: self.run_id,
            key: format!("{}+", self.key),
            worst_case: self.worst_case - existing.credits,
            price: self.price,
            context: self.context.clone(),
        })
    }

    /// The credits it holds.
    pub(super) fn worst_case(&self) -> u64 {
        self.worst_case
    }

    /// What the ledger is asked for, to record it with the run's command that starts the call.
    pub(super) fn call_hold(&self, step: u32) -> CallHold {
        CallHold {
            step,
            key: self.key.clone(),
            worst_case: self.worst_case,
            price: self.price,
        }
    }

    /// The same hold, naming `event` as its cause (a top-up asked for later names it too).
    pub(super) fn caused_by(mut self, event: Option<Uuid>) -> Self {
        self.context.causation_id = event;
        self
    }

    /// Asks the ledger for the hold once.
    pub(super) async fn reserve(&self) -> Result<ReserveOutcome, ExecutionError> {
        Ok(self
            .billing
            .reserve_priced(
                self.org_id,
                self.run_id,
                &self.key,
                self.worst_case,
                Some(self.price),
                &self.context,
            )
            .await
            .map_err(RunsError::from)?)
    }
}

impl Execution<'_> {
    /// The hold the model call of `step` with `request` needs: its worst case, named by the
    /// step (`None` when runs are not billed). Its cause is the run's last event recorded
    /// when it is asked for: the one before the call's `llm_call.started` when both are asked
    /// at once (the usual case), else that `llm_call.started`.
    pub(super) fn hold_for(&self, step: u32, request: &ChatRequest) -> Option<Hold> {
        let billing = self.executor.service().billing_shared()?;
        let org_id = self.run.org_id()?;
        let settings = self.executor.settings();
        let max_output = request
            .max_output_tokens
            .unwrap_or(settings.default_max_output_tokens);
        let worst_case = settings
            .prices
            .worst_case(&request.model, request.prompt_token_bound(), max_output);
        let model_price = settings.prices.price(&request.model);
        let price = CallPrice {
            prompt_tokens: request.counted_prompt_tokens(),
            prompt_per_million: model_price.prompt,
            completion_per_million: model_price.completion,
            max_output_tokens: u64::from(max_output),
        };
        let mut context = self.context.clone();
        context.causation_id = self.last_event;
        Some(Hold {
            billing,
            org_id,
            run_id: self.run_id,
            key: llm_call_key(self.run_id, step),
            worst_case,
            price,
            context,
        })
    }

    /// Takes `hold` before the call is made: `first` is the answer to a reservation already
    /// asked (beside the start's record), `None` to ask now. `Some` when the execution must
    /// stop: the run paused for credits, or it moved on without this executor meanwhile.
    pub(super) async fn take_hold(
        &mut self,
        mut hold: Hold,
        first: Option<ReserveOutcome>,
    ) -> Result<Option<Outcome>, ExecutionError> {
        let waiting_since = Instant::now();
        let mut answer = first;
        let mut ended_runs_looked_at = false;
        loop {
            let outcome = match answer.take() {
                Some(outcome) => outcome,
                None => hold.reserve().await?,
            };
            let (available, requested) = match outcome {
                ReserveOutcome::Reserved(existing) => match hold.short_by(&existing) {
                    // Another executor's hold for this call, asked for ahead with a tool result
                    // it never got to record (this one took the run over and called the tool
                    // again): the difference is held too, under a key of its own, released
                    // with the call's charge.
                    Some(top_up) => {
                        self.topped_up.push(top_up.key.clone());
                        hold = top_up;
                        continue;
                    }
                    None => return Ok(None),
                },
                ReserveOutcome::Insufficient { available, requested } => (available, requested),
            };
            // A hold an ended run left (its executor died) is released, once per call.
            if !ended_runs_looked_at {
                ended_runs_looked_at = true;
                let service = self.executor.service();
                if service.release_holds_of_ended_runs(hold.org_id).await > 0 {
                    continue;
                }
            }
            if self.balance_covers(&hold.billing, hold.org_id, requested).await?
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
    /// and releases the rest of its hold, beside the run's next work (a tool call): the next
    /// hold, and the run's end, wait for it ([`settled`](Self::settled)). A failure loses
    /// nothing: whatever the run still holds is settled, with what it recorded, when it ends.
    ///
    /// The fallback of [`record_charged_answer`](Self::record_charged_answer), which records
    /// the charge in the answer's own commit when it can.
    pub(super) fn settle_credits(&mut self, step: u32, credits: u64, tokens_counted: bool) {
        let (Some(billing), Some(org_id)) = (self.executor.service().billing_shared(), self.run.org_id())
        else {
            return;
        };
        let mut context = self.context.clone();
        context.causation_id = self.llm_call_completed;
        let (run_id, key) = (self.run_id, llm_call_key(self.run_id, step));
        // The difference this execution held on top of a smaller hold is released with the
        // call's charge, so a run seen ended holds nothing.
        let top_ups = std::mem::take(&mut self.topped_up);
        self.pending_settle = Some(tokio::spawn(async move {
            let mut settled = billing
                .settle(org_id, &key, credits, tokens_counted, &context)
                .await
                .map(|_| ());
            for top_up in &top_ups {
                if settled.is_ok() {
                    settled = billing
                        .settle(org_id, top_up, 0, false, &context)
                        .await
                        .map(|_| ());
                }
            }
            match settled {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, run = %run_id, step, "charge not recorded now; it is when the run ends");
                    false
                }
            }
        }));
    }

    /// Records `answer`, the model's answer to the call of `step`, in one transaction with that
    /// call's charge (`credits`), and with the run's end when the answer `ends_run`.
    ///
    /// - A run is never seen ended before its last charge, and its end waits for no commit of
    ///   its own.
    /// - An answer that asks for tools goes with its charge only while the account is idle in
    ///   this process ([`account_idle`]). Then no charge is in flight on the account when the
    ///   next call's hold is asked for with the tool result. (Sent as a commit of its own once
    ///   the answer had committed, the charge was most often still in flight then: the billing
    ///   bench measured `llm_call.started #2 → credit_account.reserved #2` at 4.7 ms p50 across
    ///   16 organizations.)
    ///
    /// When they cannot go together (the execution holds a top-up under another key, the
    /// account kept changing on other nodes, the store failed), the answer is recorded alone and
    /// charged as any other call's; the run's end then waits for the charge, as it always did.
    pub(super) async fn record_charged_answer(
        &mut self,
        answer: RunCommand,
        step: u32,
        credits: u64,
        tokens_counted: bool,
        ends_run: bool,
    ) -> Result<bool, ExecutionError> {
        let executor = self.executor;
        let service = executor.service();
        if let (Some(org_id), true) = (self.run.org_id(), self.topped_up.is_empty())
            && (ends_run || account_idle(service, org_id))
        {
            let mut ending = answer.clone();
            if let RunCommand::CompleteLlmCall { then_complete, .. } = &mut ending {
                *then_complete = ends_run;
            }
            let charge = CallCharge {
                step,
                credits,
                tokens_counted,
            };
            let linked = service
                .record_with_charge(self.run_id, ending, &self.context, org_id, charge)
                .await;
            match linked.map(|linked| (linked.first, linked.second)) {
                // Nothing of either was written (or runs are not billed): the answer goes alone
                // below. A store error may also be a connection lost under a statement that was
                // committed; the answer's own record is then refused as out of step, and this
                // execution stops there (dispatched again, the run goes on from its record).
                None | Some((Err(CommandError::Conflict | CommandError::Store(_)), _)) => {
                    tracing::debug!(run = %self.run_id, step, "the answer and its charge could not be recorded together");
                }
                Some((first, second)) => {
                    let recorded = self.recorded(first)?;
                    match second {
                        Some(Ok(_)) => self.may_hold_credits = self.charge_missed,
                        _ if recorded => self.settle_credits(step, credits, tokens_counted),
                        _ => {}
                    }
                    return Ok(recorded);
                }
            }
        }
        let recorded = self.record(answer).await?;
        if recorded {
            self.settle_credits(step, credits, tokens_counted);
        }
        Ok(recorded)
    }

    /// Waits for the last call's charge to be recorded.
    pub(super) async fn settled(&mut self) {
        if let Some(settling) = self.pending_settle.take() {
            let charged = settling.await.unwrap_or(false);
            self.charge_missed |= !charged;
            self.may_hold_credits = self.charge_missed;
        }
    }

    async fn balance_covers(
        &self,
        billing: &BillingService,
        org_id: Uuid,
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

/// Whether `org_id`'s account has nothing under way in this process, so an answer riding with
/// its charge waits behind no other batch. A busy account (one organization's many runs) would
/// make the answer, and the tool call it starts, wait for the batch in flight and then its own:
/// the billing bench measured +3 to +5 ms p50 per call in one organization that way.
fn account_idle(service: &RunService, org_id: Uuid) -> bool {
    service
        .billing()
        .is_some_and(|billing| billing.account_bus().is_idle(&org_id.to_string()))
}
