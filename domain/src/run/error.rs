//! Why a run command was refused.

use uuid::Uuid;

use super::RunStatus;

/// A refused run command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// `Queue` on a run that exists.
    #[error("run already exists")]
    AlreadyExists,
    /// Any other command before `Queue`.
    #[error("run not found")]
    NotFound,
    /// The run has ended; nothing more can happen to it.
    #[error("the run has already ended ({})", status.as_str())]
    Finished {
        /// How it ended.
        status: RunStatus,
    },
    /// An executor that no longer holds the run (another took it over) tried to record a step.
    #[error("this executor no longer holds the run")]
    NotExecutor,
    /// Another executor holds the run and no takeover was asked for.
    #[error("another executor holds the run")]
    HeldByAnother,
    /// The executor asked for a step the run is not at (a bug, or a stale executor).
    #[error("the run is not at that step: {0}")]
    OutOfStep(&'static str),
    /// No such call in the run's current step.
    #[error("the run has no tool call {call_id} in its current step")]
    CallNotFound {
        /// The call asked for.
        call_id: Uuid,
    },
    /// The call is not waiting for a decision (already decided, or never needed one).
    #[error("tool call {call_id} is not awaiting approval")]
    CallNotPending {
        /// The call.
        call_id: Uuid,
    },
    /// A denial reason over its limit.
    #[error("the reason must be at most {max} characters long")]
    ReasonTooLong {
        /// The limit.
        max: usize,
    },
}
