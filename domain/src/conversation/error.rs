//! Why a conversation command was refused.

use uuid::Uuid;

/// A refused conversation command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    /// `Create` on a conversation that exists.
    #[error("conversation already exists")]
    AlreadyExists,
    /// Any other command before `Create`.
    #[error("conversation not found")]
    NotFound,
    /// The title is too long.
    #[error("title must be at most {max} characters long")]
    TitleTooLong {
        /// The limit.
        max: usize,
    },
    /// Another run of the conversation has not ended.
    #[error("run {run_id} of this conversation is still active")]
    RunActive {
        /// The active run.
        run_id: Uuid,
    },
    /// This run was started in the conversation before: an idempotency key sent again (its
    /// run id is drawn from the key), which the caller answers with the run as it stands.
    #[error("run {run_id} was already started in this conversation")]
    RunAlreadyStarted {
        /// The run.
        run_id: Uuid,
    },
    /// The conversation was archived.
    #[error("the conversation is archived and takes no new runs")]
    Archived,
    /// The input is blank.
    #[error("input must not be empty")]
    EmptyInput,
    /// The input is too large.
    #[error("input must be at most {max_bytes} bytes long")]
    InputTooLong {
        /// The limit, in UTF-8 bytes.
        max_bytes: usize,
    },
    /// The input holds a control character other than newline, carriage return or tab.
    #[error("input must not contain control characters other than newline, carriage return and tab")]
    InputControlCharacter,
}
