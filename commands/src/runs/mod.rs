//! Conversations and runs: starting, reading, cancelling and deciding on tool calls. The
//! executor that drives runs lives in the `runtime` crate and is reached through
//! [`RunDispatch`].

mod dispatch;
mod error;
mod history;
mod service;
mod steps;
mod stream_tickets;
mod transcript;
mod waiting;

pub use dispatch::{NoDispatch, RunDispatch};
pub use error::RunsError;
pub use service::{
    ApprovalPage, ConversationPage, ConversationSummary, ConversationView, PendingApproval, RunPage,
    RunService, RunView,
};
pub use steps::{CallView, StepView, steps_of};
pub use transcript::{Speaker, TranscriptCall, TranscriptMessage, transcript_of};
pub use waiting::{SweepHorizon, WaitingRun};
