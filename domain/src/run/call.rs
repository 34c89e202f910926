//! A tool call of the run's latest model answer, as the aggregate tracks it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whether a call may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// The agent's policy lets it run at once.
    NotRequired,
    /// Waiting for a person.
    Pending,
    /// A person approved it.
    Approved,
    /// A person denied it (or the approval expired).
    Denied,
}

/// One tool call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Call {
    /// Our id: derived from the run, the step and the call's index, so it is the same after any
    /// retry; also the idempotency key sent to the tool.
    pub call_id: Uuid,
    /// The model's id for the call (for the tool message; not stable across providers' retries).
    pub model_call_id: String,
    /// The tool's name, as the model wrote it.
    pub name: String,
    /// The arguments, as the model wrote them (JSON text, possibly invalid).
    pub arguments: String,
    /// Its approval.
    pub approval: ApprovalState,
    /// How many times it was started.
    pub attempts: u32,
    /// Whether its outcome (output, failure or denial) is recorded.
    pub finished: bool,
    /// When a pending approval expires (it is then denied with reason `expired`); never when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Call {
    /// Whether the executor should start it (again): allowed to run and no outcome yet.
    pub fn is_runnable(&self) -> bool {
        !self.finished
            && matches!(
                self.approval,
                ApprovalState::NotRequired | ApprovalState::Approved
            )
    }
}

/// The id of call `index` of step `step` of `run_id`.
pub fn call_id(run_id: Uuid, step: u32, index: usize) -> Uuid {
    Uuid::new_v5(&run_id, format!("step:{step}:call:{index}").as_bytes())
}
