//! A model call's answer recorded in one transaction with the call's charge.
//!
//! A model call's answer (`llm_call.completed`, the message, the tool calls it asks for, and
//! `run.completed` when it ends the run) and the call's charge in the ledger are one commit: a
//! client who sees the run ended sees what it cost, the run's end waits for no second commit in
//! series, and no charge is still in flight on the account when the next call's hold is asked
//! for (the executor links an answer that asks for tools only while the account is idle). The
//! charge names the `llm_call.completed` it settles, as every charge does.

use domain::credit_account::CreditAccount;
use domain::run::{Run, RunCommand};
use eventstore::CommandContext;
use eventstore::store::{Linked, NewEvent};
use uuid::Uuid;

use super::{RunService, llm_call_key};
use crate::billing::BillingService;

/// The event a model call's charge names as its cause.
const LLM_CALL_COMPLETED: &str = "llm_call.completed";

/// What a model call cost, as the run records it.
#[derive(Clone, Copy, Debug)]
pub struct CallCharge {
    /// The step whose model call it is.
    pub step: u32,
    /// Credits charged.
    pub credits: u64,
    /// Whether Agentry counted the tokens (the provider reported no usage).
    pub tokens_counted: bool,
}

impl RunService {
    /// Records `command` (the answer of the model call `charge` prices) on `run_id` and, in
    /// the same transaction, the call's charge on `org_id`'s account. `second` of the answer is
    /// `Some(Ok(_))` when the ledger holds the charge now (recorded here, or earlier); any other
    /// answer leaves it to [`BillingService::settle`].
    ///
    /// `None`, with nothing recorded, when runs are not billed.
    pub async fn record_with_charge(
        &self,
        run_id: Uuid,
        command: RunCommand,
        context: &CommandContext,
        org_id: Uuid,
        charge: CallCharge,
    ) -> Option<Linked<Run, CreditAccount>> {
        let run_key = run_id.to_string();
        let billing = self.billing.as_ref()?;
        let account_id = org_id.to_string();
        let key = llm_call_key(run_id, charge.step);
        let follow = |events: &[NewEvent]| {
            let mut charge_context = context.clone();
            charge_context.causation_id = events
                .iter()
                .find(|event| event.event_type == LLM_CALL_COMPLETED)
                .map(|event| event.event_id);
            let settle = BillingService::settle_command(&key, charge.credits, charge.tokens_counted);
            Some((settle, charge_context))
        };
        let linked = self
            .runs()
            .execute_linked(
                &run_key,
                command,
                context,
                billing.account_bus(),
                &account_id,
                follow,
            )
            .await;
        Some(linked)
    }
}
