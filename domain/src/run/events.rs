//! Events of the run aggregate: the run's stream. Their JSON shapes are stored forever.
//!
//! Every event carries the stream ids it takes: `id`, or for `message.delta` `first_id` and one
//! id per chunk.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Call;

/// A model call the run had open when it was cancelled (it was streaming, or its executor had
/// stopped mid-answer): charged for the text recorded of it, its tokens counted by Agentry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AbandonedCall {
    /// Its step.
    pub step: u32,
    /// The prompt's tokens, counted from the request.
    pub prompt_tokens: u64,
    /// The tokens of the answer's text recorded before the cancel, counted.
    pub completion_tokens: u64,
    /// What it costs, at the price its hold recorded.
    pub credits: u64,
}

/// Why a tool call failed, as the model and readers are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolFailure {
    /// A stable code: `unknown_tool`, `invalid_arguments`, `timeout`, `error_status`, …
    pub code: String,
    /// What went wrong.
    pub detail: String,
}

/// What happened in a run; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RunEvent {
    /// The run was recorded; it waits for an executor.
    #[serde(rename = "run.queued")]
    Queued {
        /// Stream id.
        id: u64,
        /// The run's id.
        run_id: Uuid,
        /// The organization.
        org_id: Uuid,
        /// The conversation.
        conversation_id: Uuid,
        /// The agent.
        agent_id: Uuid,
        /// Its version.
        agent_version: u32,
        /// The user's input.
        input: String,
    },
    /// An executor took the run for the first time.
    #[serde(rename = "run.started")]
    Started {
        /// Stream id.
        id: u64,
        /// The executor.
        executor: Uuid,
    },
    /// An executor took the run again: after approvals, or over from one that stopped. When
    /// the earlier one was in the middle of a model call, the text it streamed of that step is
    /// void (`discarded_step`) and the ids it may have sent live are skipped.
    #[serde(rename = "run.resumed")]
    Resumed {
        /// Stream id (after the skipped ones).
        id: u64,
        /// The executor.
        executor: Uuid,
        /// The step whose partial answer is void.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        discarded_step: Option<u32>,
        /// Ids skipped before this one.
        #[serde(default)]
        skipped_ids: u64,
    },
    /// A model call began.
    #[serde(rename = "llm_call.started")]
    LlmCallStarted {
        /// Stream id.
        id: u64,
        /// The step (1 for the first model call of the run).
        step: u32,
        /// The model.
        model: String,
    },
    /// Text of the answer being generated, one stream id per chunk.
    #[serde(rename = "message.delta")]
    MessageDelta {
        /// The first chunk's stream id.
        first_id: u64,
        /// The step.
        step: u32,
        /// The chunks, in order.
        chunks: Vec<String>,
    },
    /// A model call answered.
    #[serde(rename = "llm_call.completed")]
    LlmCallCompleted {
        /// Stream id.
        id: u64,
        /// The step.
        step: u32,
        /// The model.
        model: String,
        /// Prompt tokens.
        prompt_tokens: u64,
        /// Completion tokens.
        completion_tokens: u64,
        /// Whether the provider reported the usage.
        usage_reported: bool,
        /// Credits by the price table.
        credits: u64,
        /// From the request to the last byte.
        latency_ms: u64,
        /// The provider's finish reason.
        finish_reason: String,
        /// Retries before it answered.
        retries: u32,
    },
    /// A model call failed for good.
    #[serde(rename = "llm_call.failed")]
    LlmCallFailed {
        /// Stream id.
        id: u64,
        /// The step.
        step: u32,
        /// The model.
        model: String,
        /// A stable code.
        code: String,
        /// What went wrong.
        detail: String,
        /// Retries made.
        retries: u32,
    },
    /// The model's whole answer.
    #[serde(rename = "message.completed")]
    MessageCompleted {
        /// Stream id.
        id: u64,
        /// The step.
        step: u32,
        /// The text.
        content: String,
    },
    /// The model asked for a tool call.
    #[serde(rename = "tool_call.requested")]
    ToolCallRequested {
        /// Stream id.
        id: u64,
        /// The step.
        step: u32,
        /// The call, as first recorded (approval `pending` or `not_required`, no attempt).
        call: Call,
    },
    /// A person approved the call.
    #[serde(rename = "tool_call.approved")]
    ToolCallApproved {
        /// Stream id.
        id: u64,
        /// The call.
        call_id: Uuid,
        /// Who.
        by: String,
    },
    /// A person denied the call, or its approval expired (`by` is `system`, reason `expired`).
    #[serde(rename = "tool_call.denied")]
    ToolCallDenied {
        /// Stream id.
        id: u64,
        /// The call.
        call_id: Uuid,
        /// Who.
        by: String,
        /// Why; told to the model.
        reason: String,
    },
    /// The request to the tool is about to leave; `idempotency_key` is sent with it, the same
    /// on every attempt.
    #[serde(rename = "tool_call.started")]
    ToolCallStarted {
        /// Stream id.
        id: u64,
        /// The call.
        call_id: Uuid,
        /// 1 for the first attempt.
        attempt: u32,
        /// The key the tool receives.
        idempotency_key: String,
    },
    /// The tool answered.
    #[serde(rename = "tool_call.completed")]
    ToolCallCompleted {
        /// Stream id.
        id: u64,
        /// The call.
        call_id: Uuid,
        /// Its output, given to the model.
        output: String,
    },
    /// The call could not be made or failed; the model is told.
    #[serde(rename = "tool_call.failed")]
    ToolCallFailed {
        /// Stream id.
        id: u64,
        /// The call.
        call_id: Uuid,
        /// Why.
        #[serde(flatten)]
        failure: ToolFailure,
    },
    /// The run stopped at a step boundary because the organization's credits do not cover its
    /// next model call; no executor holds it. It goes on (`run.resumed`) once credits arrive.
    #[serde(rename = "run.paused")]
    Paused {
        /// Stream id.
        id: u64,
        /// Why: `insufficient_credits`.
        reason: String,
        /// What the reader is told.
        detail: String,
        /// The credits the next model call needs reserved (its worst case).
        credits_needed: u64,
        /// The credits that were available (balance minus other runs' reservations).
        credits_available: i64,
    },
    /// The agent answered: the run is done.
    #[serde(rename = "run.completed")]
    Completed {
        /// Stream id.
        id: u64,
        /// The final answer.
        output: String,
    },
    /// The run stopped on an error.
    #[serde(rename = "run.failed")]
    Failed {
        /// Stream id.
        id: u64,
        /// A stable code.
        code: String,
        /// What went wrong.
        detail: String,
    },
    /// Someone cancelled the run. Cancelled while an executor was streaming a model's answer,
    /// the ids it may have sent live are skipped (as for a takeover).
    #[serde(rename = "run.cancelled")]
    Cancelled {
        /// Stream id (after the skipped ones).
        id: u64,
        /// Who.
        by: String,
        /// Ids skipped before this one.
        #[serde(default)]
        skipped_ids: u64,
        /// The model call it had open, charged for what it streamed (billed runs only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        abandoned_call: Option<AbandonedCall>,
    },
}

impl RunEvent {
    /// The first stream id the event accounts for: a chunk's id, or for an event that skips ids
    /// (a takeover or a cancel while a model streamed) the first id skipped.
    pub fn first_id(&self) -> u64 {
        match self {
            Self::MessageDelta { first_id, .. } => *first_id,
            Self::Resumed { id, skipped_ids, .. } | Self::Cancelled { id, skipped_ids, .. } => {
                id.saturating_sub(*skipped_ids)
            }
            other => other.last_id(),
        }
    }

    /// Whether the run ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed { .. } | Self::Failed { .. } | Self::Cancelled { .. }
        )
    }

    /// The last stream id the event takes.
    pub fn last_id(&self) -> u64 {
        match self {
            Self::MessageDelta { first_id, chunks, .. } => first_id + chunks.len() as u64 - 1,
            Self::Queued { id, .. }
            | Self::Started { id, .. }
            | Self::Resumed { id, .. }
            | Self::LlmCallStarted { id, .. }
            | Self::LlmCallCompleted { id, .. }
            | Self::LlmCallFailed { id, .. }
            | Self::MessageCompleted { id, .. }
            | Self::ToolCallRequested { id, .. }
            | Self::ToolCallApproved { id, .. }
            | Self::ToolCallDenied { id, .. }
            | Self::ToolCallStarted { id, .. }
            | Self::ToolCallCompleted { id, .. }
            | Self::ToolCallFailed { id, .. }
            | Self::Paused { id, .. }
            | Self::Completed { id, .. }
            | Self::Failed { id, .. }
            | Self::Cancelled { id, .. } => *id,
        }
    }
}

impl DomainEvent for RunEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Queued { .. } => "run.queued",
            Self::Started { .. } => "run.started",
            Self::Resumed { .. } => "run.resumed",
            Self::LlmCallStarted { .. } => "llm_call.started",
            Self::MessageDelta { .. } => "message.delta",
            Self::LlmCallCompleted { .. } => "llm_call.completed",
            Self::LlmCallFailed { .. } => "llm_call.failed",
            Self::MessageCompleted { .. } => "message.completed",
            Self::ToolCallRequested { .. } => "tool_call.requested",
            Self::ToolCallApproved { .. } => "tool_call.approved",
            Self::ToolCallDenied { .. } => "tool_call.denied",
            Self::ToolCallStarted { .. } => "tool_call.started",
            Self::ToolCallCompleted { .. } => "tool_call.completed",
            Self::ToolCallFailed { .. } => "tool_call.failed",
            Self::Paused { .. } => "run.paused",
            Self::Completed { .. } => "run.completed",
            Self::Failed { .. } => "run.failed",
            Self::Cancelled { .. } => "run.cancelled",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
