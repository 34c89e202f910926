//! A conversation: an agent pinned at one version, its runs in order, and the rule that only
//! one run at a time is active in it.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{ActiveRun, Conversation, check_input};
pub use commands::ConversationCommand;
pub use error::ConversationError;
pub use events::ConversationEvent;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Largest input of one run, in UTF-8 bytes (32 KiB).
pub const MAX_INPUT_BYTES: usize = 32 * 1024;
