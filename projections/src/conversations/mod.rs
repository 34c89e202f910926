//! The conversation view: every conversation with its messages, kept by the `conversations`
//! projector and read by `GET /v1/conversations`.
//!
//! - [`transcript`]: a run's messages, folded from its events;
//! - `projector`: folds conversation events into `conversation_views`;
//! - `messages`: folds run events into `conversation_messages`;
//! - [`queries`]: the reads of the routes.

mod messages;
mod projector;
pub mod queries;
pub mod transcript;

pub use projector::{CONVERSATIONS, ConversationsProjector};
pub use transcript::{RunTranscript, Speaker, TranscriptCall, TranscriptMessage, transcript_of};
