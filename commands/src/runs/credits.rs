//! A run's credits. A run starts only while its organization has credit; each model call
//! reserves its worst case before it is made and is charged what it cost after (the executor,
//! through [`RunService::billing`]); whatever a run still holds when it ends is settled with what
//! the run recorded; a run short of credits waits in `awaiting_credits` and is woken here once
//! its organization's available credits cover its next call.

use std::collections::HashMap;
use std::sync::Arc;

use domain::credit_account::{CallPrice, CreditAccount, CreditAccountError};
use domain::run::{Run, RunEvent, RunStatus};
use eventstore::CommandContext;
use uuid::Uuid;

use super::{RunService, RunsError};
use crate::billing::{BillingError, BillingService};

/// Runs waiting for credits looked at per sweep (the oldest first, per organization).
const PAUSED_PER_SWEEP: i64 = 1_000;

/// The runs waiting for credits, per organization in the order they began to wait.
const PAUSED_RUNS: &str = "
    SELECT org_id, run_id FROM run_history
     WHERE status = 'awaiting_credits' AND ($1::uuid IS NULL OR org_id = $1)
     ORDER BY org_id, queued_position
     LIMIT $2";

/// Of the given runs, those that have ended: read from the log itself, not the run history
/// view, so a run ended a moment ago (the view trails the log by a few milliseconds) is seen
/// by the run whose hold its leftover just made fail.
/// A run's terminal event is its last: one index probe per run, whatever it streamed.
const ENDED_RUNS: &str = "
    SELECT held.run_id::uuid FROM unnest($1::text[]) AS held(run_id)
     CROSS JOIN LATERAL (
           SELECT event_type FROM events
            WHERE aggregate_type = 'run' AND aggregate_id = held.run_id
            ORDER BY sequence DESC LIMIT 1) AS last
     WHERE last.event_type IN ('run.completed', 'run.failed', 'run.cancelled')";

/// What a run recorded of its model calls: each `llm_call.completed` with its event id, and
/// the `run.cancelled` that priced a call it had open.
const COMPLETED_CALLS: &str = "
    SELECT event_id, payload::text FROM events
     WHERE aggregate_type = 'run' AND aggregate_id = $1
       AND event_type IN ('llm_call.completed', 'run.cancelled')";

/// The ledger's key for the model call of `step` of `run_id`. One per step: a step's call made
/// again after a crash or a takeover is the same call to the ledger (reserved once, charged
/// once, for the answer the run records).
pub fn llm_call_key(run_id: Uuid, step: u32) -> String {
    format!("{run_id}/{step}")
}

/// What a run recorded for one model call: credits, whether Agentry counted the tokens, and
/// the `llm_call.completed` event (the charge's cause).
type RecordedCall = (u64, bool, Uuid);

impl RunService {
    /// The same service, billing runs to `billing`'s accounts.
    pub fn with_billing(mut self, billing: Arc<BillingService>) -> Self {
        self.billing = Some(billing);
        self
    }

    /// The organizations' credits, when runs are billed.
    pub fn billing(&self) -> Option<&BillingService> {
        self.billing.as_deref()
    }

    /// [`billing`](Self::billing), shared: for ledger work that outlives the caller's borrow
    /// (a charge recorded while the run goes on).
    pub fn billing_shared(&self) -> Option<Arc<BillingService>> {
        self.billing.clone()
    }

    /// Refuses to start a run of an organization without credit (balance at or below 0;
    /// credits other runs hold are not counted against it: they come back).
    ///
    /// A start is let through on the balance this process remembers (no query: the run's first
    /// model call is what the ledger really gates); a refusal is confirmed on the store's.
    pub(super) async fn require_credit(&self, org_id: Uuid) -> Result<(), RunsError> {
        let Some(billing) = &self.billing else {
            return Ok(());
        };
        if billing
            .remembered_balance(org_id)
            .await
            .is_some_and(|balance| balance > 0)
        {
            return Ok(());
        }
        let account = billing.account(org_id).await?;
        if account.balance() > 0 {
            return Ok(());
        }
        Err(BillingError::Account(CreditAccountError::InsufficientCredits {
            available: account.available(),
            requested: 1,
        })
        .into())
    }

    /// When runs are billed and `run` has a model call open with a hold that recorded its
    /// price: the call's step and price, so a cancel charges it for what it streamed. A ledger
    /// that cannot be read is logged and charges nothing: it never stands in a cancel's way.
    pub(super) async fn open_call_price(&self, run: &Run, run_id: Uuid) -> Option<(u32, CallPrice)> {
        let (Some(billing), Some(org_id), Some(step)) = (&self.billing, run.org_id(), run.open_model_call())
        else {
            return None;
        };
        let account = match billing.account(org_id).await {
            Ok(account) => account,
            Err(error) => {
                tracing::warn!(%error, run = %run_id, "the cancelled call's price could not be read; it is not charged");
                return None;
            }
        };
        account
            .reservation(&llm_call_key(run_id, step))
            .and_then(|open| open.price)
            .map(|price| (step, price))
    }

    /// Settles every reservation `run_id` still holds: the credits the run recorded for that
    /// step's call are charged, or nothing for a call it never recorded an answer of (failed,
    /// cancelled while streaming). Called when a run ends, by whoever ended it; doing it twice
    /// charges nothing more.
    pub async fn settle_run_credits(&self, run_id: Uuid, org_id: Uuid) -> Result<(), RunsError> {
        let Some(billing) = &self.billing else {
            return Ok(());
        };
        let account = billing.account(org_id).await?;
        let held: Vec<String> = account
            .open_reservations()
            .iter()
            .filter(|(_, open)| open.run_id == run_id)
            .map(|(key, _)| key.clone())
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let recorded = self.recorded_calls(run_id).await?;
        for key in held {
            let (credits, counted, cause) = match recorded.get(&key) {
                Some(&(credits, counted, event_id)) => (credits, counted, Some(event_id)),
                None => (0, false, None),
            };
            let mut context = CommandContext::system(Some(org_id));
            context.correlation_id = run_id;
            context.causation_id = cause;
            billing.settle(org_id, &key, credits, counted, &context).await?;
        }
        Ok(())
    }

    /// The model calls `run_id` recorded, by ledger key.
    async fn recorded_calls(&self, run_id: Uuid) -> Result<HashMap<String, RecordedCall>, RunsError> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(COMPLETED_CALLS)
            .bind(run_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut calls = HashMap::with_capacity(rows.len());
        for (event_id, payload) in rows {
            match serde_json::from_str(&payload) {
                Ok(RunEvent::LlmCallCompleted {
                    step,
                    credits,
                    usage_reported,
                    ..
                }) => {
                    calls.insert(llm_call_key(run_id, step), (credits, !usage_reported, event_id));
                }
                Ok(RunEvent::Cancelled {
                    abandoned_call: Some(call),
                    ..
                }) => {
                    calls.insert(llm_call_key(run_id, call.step), (call.credits, true, event_id));
                }
                _ => {}
            }
        }
        Ok(calls)
    }

    /// Settles the holds `org_id`'s ended runs still have; answers how many runs it settled.
    ///
    /// Whoever ends a run settles its holds, but a hold can be committed after that: an
    /// executor asks for a call's hold while, on another node, the run is cancelled and its
    /// holds settled; if the executor then dies before it notices, nothing else would ever
    /// release the hold, and the organization's available credits would stay short by the
    /// call's worst case for good. Called where that shortage would show (a call's hold
    /// refused, the sweep for runs waiting for credits). Settling an ended run's holds is
    /// always right, whoever does it: each is charged what the run recorded for its call.
    ///
    /// Best effort: a failure is logged and left to the next caller, never passed on to the
    /// work that called (a run refused credits, a sweep of every organization).
    pub async fn release_holds_of_ended_runs(&self, org_id: Uuid) -> usize {
        self.release_ended_runs_holds(org_id, None).await
    }

    /// [`release_holds_of_ended_runs`](Self::release_holds_of_ended_runs), with the
    /// organization's account when the caller has just read it.
    async fn release_ended_runs_holds(&self, org_id: Uuid, known: Option<&CreditAccount>) -> usize {
        match self.try_release_ended_runs_holds(org_id, known).await {
            Ok(released) => released,
            Err(error) => {
                tracing::warn!(%error, org = %org_id, "could not release the holds of ended runs; tried again later");
                0
            }
        }
    }

    async fn try_release_ended_runs_holds(
        &self,
        org_id: Uuid,
        known: Option<&CreditAccount>,
    ) -> Result<usize, RunsError> {
        let Some(billing) = &self.billing else {
            return Ok(0);
        };
        let loaded;
        let account = match known {
            Some(account) => account,
            None => {
                loaded = billing.account(org_id).await?;
                &loaded
            }
        };
        let mut holders: Vec<Uuid> = account
            .open_reservations()
            .values()
            .map(|open| open.run_id)
            .collect();
        holders.sort_unstable();
        holders.dedup();
        if holders.is_empty() {
            return Ok(0);
        }
        let holders: Vec<String> = holders.iter().map(Uuid::to_string).collect();
        let ended: Vec<Uuid> = sqlx::query_scalar(ENDED_RUNS)
            .bind(&holders)
            .fetch_all(&self.pool)
            .await?;
        let mut released = 0;
        for run_id in &ended {
            tracing::info!(run = %run_id, "releasing the credits an ended run still held");
            match self.settle_run_credits(*run_id, org_id).await {
                Ok(()) => released += 1,
                Err(error) => tracing::warn!(%error, run = %run_id, "could not release an ended run's holds"),
            }
        }
        Ok(released)
    }

    /// Wakes the runs waiting for credits (of `org_id`, or of every organization) that their
    /// organization's available credits now cover, oldest first: each is dispatched, and its
    /// executor checks the credits again before it takes the run. Answers how many were woken.
    ///
    /// A run woken in error (the credits went to another run meanwhile) records nothing and
    /// waits on; one that could go on but is not woken (another run holds credits for a
    /// moment) is woken by a later sweep.
    pub async fn wake_paused_runs(&self, org_id: Option<Uuid>) -> Result<usize, RunsError> {
        let Some(billing) = &self.billing else {
            return Ok(0);
        };
        let paused: Vec<(Uuid, Uuid)> = sqlx::query_as(PAUSED_RUNS)
            .bind(org_id)
            .bind(PAUSED_PER_SWEEP)
            .fetch_all(&self.pool)
            .await?;
        let mut woken = 0;
        let mut current: Option<(Uuid, i64)> = None;
        for (org, run_id) in paused {
            let available = match current {
                Some((seen, available)) if seen == org => available,
                _ => {
                    let account = billing.account(org).await?;
                    if self.release_ended_runs_holds(org, Some(&account)).await == 0 {
                        account.available()
                    } else {
                        billing.account(org).await?.available()
                    }
                }
            };
            if available <= 0 {
                // Nothing to hand out: the organization's other waiting runs are not read.
                current = Some((org, available));
                continue;
            }
            let run = self.runs().load(&run_id.to_string()).await?;
            let needed = match run.credits_needed() {
                Some(needed) if run.status() == RunStatus::AwaitingCredits => needed,
                // The view is behind: the run went on or ended meanwhile.
                _ => {
                    current = Some((org, available));
                    continue;
                }
            };
            let needed = i64::try_from(needed).unwrap_or(i64::MAX);
            if needed > available {
                // Oldest first: a younger run does not take the credits an older one waits for.
                current = Some((org, i64::MIN));
                continue;
            }
            self.dispatch.wake(run_id);
            woken += 1;
            current = Some((org, available - needed));
        }
        Ok(woken)
    }
}
