//! A run's steps as `GET /v1/runs/{id}` shows them, folded from its events.

use domain::run::{ApprovalState, RunEvent, ToolFailure};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One tool call of a step. Stored as JSON in the run history view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallView {
    /// Our id (use it to approve or deny).
    pub call_id: Uuid,
    /// The tool.
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: String,
    /// `not_required`, `pending`, `approved` or `denied`.
    pub approval: ApprovalState,
    /// `requested`, `awaiting_approval`, `running`, `completed`, `failed` or `denied`.
    pub status: String,
    /// How many times it was sent.
    pub attempts: u32,
    /// The tool's output.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<ToolFailure>,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// The denial's reason.
    pub reason: Option<String>,
}

/// One model call and what came of it. Stored as JSON in the run history view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// 1 for the run's first model call.
    pub step: u32,
    /// The model.
    pub model: String,
    /// `running`, `completed`, `failed`, or `cancelled` (the run was cancelled while it streamed).
    pub status: String,
    /// The answer's text (so far, while it is being generated).
    pub content: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Credits.
    pub credits: u64,
    /// From the request to the last byte.
    pub latency_ms: u64,
    /// The provider's finish reason.
    pub finish_reason: Option<String>,
    /// Retries before it answered.
    pub retries: u32,
    /// Its tool calls.
    pub tool_calls: Vec<CallView>,
}

/// The run's steps, in order.
pub fn steps_of(events: &[RunEvent]) -> Vec<StepView> {
    let mut steps: Vec<StepView> = Vec::new();
    for event in events {
        apply_to_steps(&mut steps, event);
    }
    steps
}

/// Folds one more event of the run into `steps` (the run history view keeps its steps and
/// folds each new event into them, rather than reading every event again).
pub fn apply_to_steps(steps: &mut Vec<StepView>, event: &RunEvent) {
    match event {
        RunEvent::LlmCallStarted { step, model, .. } => {
            steps.retain(|existing| existing.step != *step);
            steps.push(StepView {
                step: *step,
                model: model.clone(),
                status: "running".into(),
                ..StepView::default()
            });
        }
        RunEvent::Resumed {
            discarded_step: Some(step),
            ..
        } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == *step) {
                view.content.clear();
            }
        }
        RunEvent::MessageDelta { step, chunks, .. } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == *step) {
                view.content.extend(chunks.iter().map(String::as_str));
            }
        }
        RunEvent::LlmCallCompleted {
            step,
            prompt_tokens,
            completion_tokens,
            credits,
            latency_ms,
            finish_reason,
            retries,
            ..
        } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == *step) {
                view.status = "completed".into();
                view.prompt_tokens = *prompt_tokens;
                view.completion_tokens = *completion_tokens;
                view.credits = *credits;
                view.latency_ms = *latency_ms;
                view.finish_reason = Some(finish_reason.clone());
                view.retries = *retries;
            }
        }
        RunEvent::Cancelled {
            abandoned_call: Some(call),
            ..
        } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == call.step) {
                view.status = "cancelled".into();
                view.prompt_tokens = call.prompt_tokens;
                view.completion_tokens = call.completion_tokens;
                view.credits = call.credits;
            }
        }
        RunEvent::LlmCallFailed { step, retries, .. } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == *step) {
                view.status = "failed".into();
                view.retries = *retries;
            }
        }
        RunEvent::MessageCompleted { step, content, .. } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == *step) {
                view.content.clone_from(content);
            }
        }
        RunEvent::ToolCallRequested { step, call, .. } => {
            if let Some(view) = steps.iter_mut().find(|view| view.step == *step) {
                let status = if call.approval == ApprovalState::Pending {
                    "awaiting_approval"
                } else {
                    "requested"
                }
                .to_owned();
                view.tool_calls.push(CallView {
                    call_id: call.call_id,
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    approval: call.approval,
                    status,
                    attempts: 0,
                    output: None,
                    error: None,
                    decided_by: None,
                    reason: None,
                });
            }
        }
        other => update_call(steps, other),
    }
}

fn update_call(steps: &mut [StepView], event: &RunEvent) {
    let call_id = match event {
        RunEvent::ToolCallApproved { call_id, .. }
        | RunEvent::ToolCallDenied { call_id, .. }
        | RunEvent::ToolCallStarted { call_id, .. }
        | RunEvent::ToolCallCompleted { call_id, .. }
        | RunEvent::ToolCallFailed { call_id, .. } => *call_id,
        _ => return,
    };
    let Some(call) = steps
        .iter_mut()
        .rev()
        .flat_map(|step| step.tool_calls.iter_mut())
        .find(|call| call.call_id == call_id)
    else {
        return;
    };
    match event {
        RunEvent::ToolCallApproved { by, .. } => {
            call.approval = ApprovalState::Approved;
            call.status = "requested".into();
            call.decided_by = Some(by.clone());
        }
        RunEvent::ToolCallDenied { by, reason, .. } => {
            call.approval = ApprovalState::Denied;
            call.status = "denied".into();
            call.decided_by = Some(by.clone());
            call.reason = Some(reason.clone());
        }
        RunEvent::ToolCallStarted { attempt, .. } => {
            call.status = "running".into();
            call.attempts = *attempt;
        }
        RunEvent::ToolCallCompleted { output, .. } => {
            call.status = "completed".into();
            call.output = Some(output.clone());
        }
        RunEvent::ToolCallFailed { failure, .. } => {
            call.status = "failed".into();
            call.error = Some(failure.clone());
        }
        _ => {}
    }
}
