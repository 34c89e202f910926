//! What agent operations answer besides success.

use domain::agent::AgentError;
use eventstore::{CommandError, StoreError};
use thiserror::Error;

use crate::identity::IdentityError;

/// An agent refusal, or one of the outcomes shared with identity (denied, busy, unstorable,
/// internal), which the API maps as it maps identity's.
#[derive(Debug, Error)]
pub enum AgentsError {
    /// The agent refused the command, or does not exist in the caller's organization.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The model is not one this deployment offers.
    #[error("no model named {model:?} is offered; offered: {}", offered.join(", "))]
    UnknownModel {
        /// The name given.
        model: String,
        /// The names offered.
        offered: Vec<String>,
    },
    /// Denied, lost a race, unstorable input, or our failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl From<CommandError<AgentError>> for AgentsError {
    fn from(error: CommandError<AgentError>) -> Self {
        match error {
            CommandError::Rejected(refusal) => Self::Agent(refusal),
            CommandError::Conflict => Self::Identity(IdentityError::Busy),
            CommandError::Store(store) => Self::Identity(store.into()),
        }
    }
}

impl From<StoreError> for AgentsError {
    fn from(error: StoreError) -> Self {
        Self::Identity(error.into())
    }
}

impl From<sqlx::Error> for AgentsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Identity(error.into())
    }
}
