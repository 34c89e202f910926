//! Commands of the run aggregate: the API's (queue, approve, deny, cancel) and the executor's
//! (each carrying the executor's id, which the aggregate checks).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::credit_account::CallPrice;

/// What the model's answer asked for: one tool call, as the model wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelToolCall {
    /// The model's id for the call.
    pub model_call_id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (JSON text, possibly invalid).
    pub arguments: String,
    /// Whether the agent's policy makes it wait for approval.
    pub approval_required: bool,
    /// When that approval expires (the agent's approval timeout from now).
    pub approval_expires_at: Option<DateTime<Utc>>,
}

/// The record of one finished model call.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmCallRecord {
    /// The model.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Whether the provider reported the usage (otherwise it was counted by Agentry).
    pub usage_reported: bool,
    /// Credits by the price table.
    pub credits: u64,
    /// From the request to the last byte.
    pub latency_ms: u64,
    /// The provider's finish reason.
    pub finish_reason: String,
    /// Retries before it answered.
    pub retries: u32,
}

/// How a tool call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolResult {
    /// The tool answered; its output goes to the model.
    Output(String),
    /// It could not be called or failed; the model is told `detail`.
    Failed {
        /// A stable code (`unknown_tool`, `invalid_arguments`, `timeout`, …).
        code: String,
        /// What went wrong, for the model and the reader.
        detail: String,
    },
}

/// What is asked of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunCommand {
    /// Record a new run, waiting for an executor.
    Queue {
        /// The run's own id (its tool calls' ids derive from it).
        run_id: Uuid,
        /// The organization.
        org_id: Uuid,
        /// The conversation.
        conversation_id: Uuid,
        /// The agent.
        agent_id: Uuid,
        /// The agent version the conversation pinned.
        agent_version: u32,
        /// The user's input.
        input: String,
    },
    /// An executor takes the run (first time, after approvals, or over from a dead executor).
    Start {
        /// The executor.
        executor: Uuid,
        /// Whether it may take the run from another executor (the dispatcher knows the other
        /// stopped: a redelivered work item, a restart). Without it, a run another executor
        /// holds is refused, so a duplicate dispatch never steals a live run.
        takeover: bool,
        /// Also record the model call it goes on with as started, in the same append, when
        /// that is what the run does next: one commit fewer per run. For a billed run, the
        /// call's hold is recorded in the same transaction (`RunService::record_with_hold`).
        then_call_model: Option<String>,
    },
    /// The executor is about to call the model.
    StartLlmCall {
        /// The executor.
        executor: Uuid,
        /// The model.
        model: String,
    },
    /// Text of the model's answer so far, in the chunks it was sent live.
    RecordDeltas {
        /// The executor.
        executor: Uuid,
        /// The chunks, in order.
        chunks: Vec<String>,
    },
    /// The model answered.
    CompleteLlmCall {
        /// The executor.
        executor: Uuid,
        /// Usage and timing.
        record: LlmCallRecord,
        /// The whole text.
        content: String,
        /// Its tool calls, in the model's order.
        tool_calls: Vec<ModelToolCall>,
        /// Text chunks streamed since the last recorded batch, recorded first (one
        /// `message.delta`) in the same append.
        last_chunks: Vec<String>,
        /// Also record the first call as started, in the same append, when it may run at once
        /// (the executor checked its tool and arguments): one commit fewer per step, and the
        /// start is still recorded before the request leaves.
        start_first_call: bool,
        /// Also record the run as completed, in the same append, when the answer has no tool
        /// calls: one commit fewer per run. A billed run asks for it only when the last charge
        /// goes in the same transaction (`CommandBus::execute_linked`); otherwise the charge is
        /// recorded between the answer and the run's end.
        then_complete: bool,
    },
    /// The model call failed for good: the run fails.
    FailLlmCall {
        /// The executor.
        executor: Uuid,
        /// The model.
        model: String,
        /// A stable code.
        code: String,
        /// What went wrong.
        detail: String,
        /// Retries made.
        retries: u32,
    },
    /// The executor is about to send a tool call (recorded before the request leaves).
    StartToolCall {
        /// The executor.
        executor: Uuid,
        /// The call.
        call_id: Uuid,
    },
    /// A tool call ended.
    FinishToolCall {
        /// The executor.
        executor: Uuid,
        /// The call.
        call_id: Uuid,
        /// Its result.
        result: ToolResult,
        /// Also record the next model call as started, in the same append, with this model,
        /// when this was the step's last unfinished call.
        then_call_model: Option<String>,
    },
    /// The agent answered without tool calls: the run is done.
    Complete {
        /// The executor.
        executor: Uuid,
    },
    /// The run cannot go on (step limit, missing agent, …).
    Fail {
        /// The executor.
        executor: Uuid,
        /// A stable code.
        code: String,
        /// What went wrong.
        detail: String,
    },
    /// The organization's credits do not cover the next model call: the executor lets go of
    /// the run until credits arrive.
    Pause {
        /// The executor.
        executor: Uuid,
        /// Why (`insufficient_credits`).
        reason: String,
        /// What the reader is told.
        detail: String,
        /// The credits the next call needs reserved.
        credits_needed: u64,
        /// The credits available.
        credits_available: i64,
    },
    /// A person approves a pending call.
    Approve {
        /// The call.
        call_id: Uuid,
        /// Who decided (`user:<id>`, `api_key:<id>`).
        by: String,
    },
    /// A person denies a pending call (or its approval expired: `by` is `system`).
    Deny {
        /// The call.
        call_id: Uuid,
        /// Who decided.
        by: String,
        /// Why; told to the model.
        reason: String,
    },
    /// Someone cancels the run.
    Cancel {
        /// Who.
        by: String,
        /// When runs are billed: the step of the model call the run has open and that call's
        /// price, as its hold recorded it. The call is then charged for the text recorded of
        /// it (ignored if the run has no call of that step open by the time it is decided).
        open_call_price: Option<(u32, CallPrice)>,
    },
}
