//! A model call's start recorded in one transaction with the call's hold on the ledger.
//!
//! A billed run's first model call is held before it is made, as every call is. Recorded one
//! after the other, the run's start (with the call's `llm_call.started`) and the hold were two
//! commits in series before the request could leave; linked, they are one, and the hold names
//! the `llm_call.started` it is for.

use domain::credit_account::CallPrice;
use domain::run::{Run, RunCommand, RunError, RunEvent};
use eventstore::store::NewEvent;
use eventstore::{CommandContext, CommandError, Committed};
use uuid::Uuid;

use super::RunService;
use crate::billing::{BillingError, BillingService, ReserveOutcome};

/// The event a model call's hold names as its cause.
const LLM_CALL_STARTED: &str = "llm_call.started";

/// A model call's hold: what [`BillingService::reserve_priced`] would be asked for.
#[derive(Clone, Debug)]
pub struct CallHold {
    /// The step whose model call it holds for.
    pub step: u32,
    /// The call's key in the ledger (`llm_call_key`).
    pub key: String,
    /// Its worst case, in credits.
    pub worst_case: u64,
    /// Its price, for a charge if the run is cancelled while the call streams.
    pub price: CallPrice,
}

/// What recording a command with a model call's hold came to.
#[derive(Debug)]
pub struct HeldCall {
    /// The run's command, as [`RunService::runs`]'s `execute` would answer it.
    pub recorded: Result<Committed<Run>, CommandError<RunError>>,
    /// The ledger's answer to the hold, when it was asked with the command: as
    /// [`BillingService::reserve_priced`] answers, except that an account not opened yet is
    /// an error here (`reserve_priced` opens it). `None` when it was not asked (the command was
    /// refused, decided nothing, failed, or started no call of the hold's step): ask for it
    /// alone then.
    pub hold: Option<Result<ReserveOutcome, BillingError>>,
}

impl RunService {
    /// Records `command` (one that starts a model call) on `run_id` and, in the same
    /// transaction, `hold` on `org_id`'s account, naming the call's `llm_call.started`. When the
    /// ledger refuses the hold (not enough credits), the command is recorded alone and
    /// [`HeldCall::hold`] says why.
    ///
    /// `None`, with nothing recorded, when runs are not billed.
    pub async fn record_with_hold(
        &self,
        run_id: Uuid,
        command: RunCommand,
        context: &CommandContext,
        org_id: Uuid,
        hold: &CallHold,
    ) -> Option<HeldCall> {
        let billing = self.billing.as_ref()?;
        // Only when the store decided to start the call the hold was built for (the run may
        // have moved on since the caller read it): else the command goes alone.
        let follow = |events: &[NewEvent]| {
            let started = events.iter().find(|event| event.event_type == LLM_CALL_STARTED)?;
            match serde_json::from_str(&started.payload) {
                Ok(RunEvent::LlmCallStarted { step, .. }) if step == hold.step => {}
                _ => return None,
            }
            let mut hold_context = context.clone();
            hold_context.causation_id = Some(started.event_id);
            let reserve =
                BillingService::reserve_command(run_id, &hold.key, hold.worst_case, Some(hold.price));
            Some((reserve, hold_context))
        };
        let linked = self
            .runs()
            .execute_linked(
                &run_id.to_string(),
                command,
                context,
                billing.account_bus(),
                &org_id.to_string(),
                follow,
            )
            .await;
        let hold = match linked.second {
            Some(appended) => Some(
                billing
                    .reserve_outcome(org_id, &hold.key, appended.map_err(BillingError::from))
                    .await,
            ),
            None => None,
        };
        Some(HeldCall {
            recorded: linked.first,
            hold,
        })
    }
}
