//! Conversations and runs: starting, reading, cancelling and deciding on tool calls. The
//! executor that drives runs lives in the `runtime` crate and is reached through
//! [`RunDispatch`].

mod charged_answer;
mod credits;
mod dispatch;
mod error;
mod held_call;
mod history;
mod repeated;
mod service;
mod stream_tickets;
mod views;
mod waiting;

pub use charged_answer::CallCharge;
pub use credits::llm_call_key;
pub use dispatch::{NoDispatch, RunDispatch};
pub use error::RunsError;
pub use held_call::{CallHold, HeldCall};
pub use projections::conversations::{
    RunTranscript, Speaker, TranscriptCall, TranscriptMessage, transcript_of,
};
pub use projections::runs::{CallView, StepView, steps_of};
pub use service::{
    ApprovalPage, ConversationPage, ConversationSummary, ConversationView, PendingApproval, RunPage,
    RunService, RunView,
};
pub use waiting::{SweepHorizon, WaitingRun};
