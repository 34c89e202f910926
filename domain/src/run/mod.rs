//! A run: one turn of a conversation, from the user's input to the agent's answer, every step
//! recorded as an event before the next begins.
//!
//! The aggregate decides what may happen next (which the executor asks through
//! [`Run::next_action`]), fences executors (only the one that started or resumed the run may
//! record its steps), and numbers the run's stream: every event carries the stream ids it
//! takes (`id`; a `message.delta` takes one id per chunk), 1, 2, 3, … with no gap and no repeat,
//! so a reader can resume after any id.

mod aggregate;
mod call;
mod commands;
mod error;
mod events;
mod status;

pub use aggregate::{NextAction, Run};
pub use call::{ApprovalState, Call};
pub use commands::{LlmCallRecord, ModelToolCall, RunCommand, ToolResult};
pub use error::RunError;
pub use events::{AbandonedCall, RunEvent, ToolFailure};
pub use status::RunStatus;

/// Most stream ids an executor may hand out live (message deltas sent to readers before their
/// batch is recorded). A run resumed by another executor skips this many ids, so ids a crashed
/// executor sent live are never reused for other text.
pub const MAX_UNRECORDED_IDS: u64 = 1_024;
