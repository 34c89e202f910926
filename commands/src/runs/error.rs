//! What conversation and run operations answer besides success.

use domain::agent::AgentError;
use domain::conversation::ConversationError;
use domain::run::RunError;
use eventstore::{CommandError, StoreError};
use thiserror::Error;

use crate::identity::IdentityError;
use crate::quotas::{QuotaError, QuotaExceeded};

/// A refusal of the conversation, the run or the agent, or one of the outcomes shared with
/// identity (denied, busy, unstorable, internal).
#[derive(Debug, Error)]
pub enum RunsError {
    /// The conversation refused, or does not exist in the caller's organization.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// The run refused, or does not exist in the caller's organization.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The conversation's agent is missing.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The organization's credits: a run cannot start without any.
    #[error(transparent)]
    Billing(#[from] crate::billing::BillingError),
    /// A plan limit of the organization is reached (a run's start).
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    /// Denied, lost a race, unstorable input, or our failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl From<QuotaError> for RunsError {
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Exceeded(exceeded) => Self::Quota(exceeded),
            QuotaError::Identity(other) => Self::Identity(other),
        }
    }
}

macro_rules! from_command_error {
    ($refusal:ty) => {
        impl From<CommandError<$refusal>> for RunsError {
            fn from(error: CommandError<$refusal>) -> Self {
                match error {
                    CommandError::Rejected(refusal) => refusal.into(),
                    CommandError::Conflict => Self::Identity(IdentityError::Busy),
                    CommandError::Store(store) => Self::Identity(store.into()),
                }
            }
        }
    };
}

from_command_error!(ConversationError);
from_command_error!(RunError);

impl From<StoreError> for RunsError {
    fn from(error: StoreError) -> Self {
        Self::Identity(error.into())
    }
}

impl From<sqlx::Error> for RunsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Identity(error.into())
    }
}
