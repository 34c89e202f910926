//! What tool operations answer besides success.

use domain::tool::ToolError;
use eventstore::{CommandError, StoreError};
use thiserror::Error;

use crate::identity::IdentityError;
use crate::secret_box::SealError;

/// A tool refusal, a rule the application checks (the schema, the secret), or one of the
/// outcomes shared with identity (denied, busy, unstorable, internal).
#[derive(Debug, Error)]
pub enum ToolsError {
    /// The tool refused the command, or does not exist in the caller's organization.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// `parameters` is not a JSON Schema the validator accepts; the validator's message.
    #[error("parameters is not a valid JSON Schema: {0}")]
    InvalidSchema(String),
    /// The secret given is not 16 to 256 visible ASCII characters.
    #[error("the secret must be 16 to 256 characters of visible ASCII (no spaces)")]
    InvalidSecret,
    /// A stored secret could not be sealed or opened (the secrets key changed, or the store
    /// was altered): our failure, never the caller's.
    #[error("the secret of tool {tool} cannot be sealed or opened: {reason}")]
    Sealing {
        /// The tool's name.
        tool: String,
        /// Why.
        reason: SealError,
    },
    /// Denied, lost a race, unstorable input, or our failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl From<CommandError<ToolError>> for ToolsError {
    fn from(error: CommandError<ToolError>) -> Self {
        match error {
            CommandError::Rejected(refusal) => Self::Tool(refusal),
            CommandError::Conflict => Self::Identity(IdentityError::Busy),
            CommandError::Store(store) => Self::Identity(store.into()),
        }
    }
}

impl From<StoreError> for ToolsError {
    fn from(error: StoreError) -> Self {
        Self::Identity(error.into())
    }
}

impl From<sqlx::Error> for ToolsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Identity(error.into())
    }
}
