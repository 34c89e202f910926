//! A conversation's messages, folded from its runs' events: what `GET /v1/conversations/{id}`
//! shows and what the model is sent. Nothing here is stored; the events are the record.

use domain::run::RunEvent;
use uuid::Uuid;

/// A tool call as the transcript shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptCall {
    /// Our id for the call.
    pub call_id: Uuid,
    /// The model's id for it.
    pub model_call_id: String,
    /// The tool.
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: String,
}

/// Who a message is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    /// The user's input.
    User,
    /// The model's answer.
    Assistant,
    /// A tool's result (or the error or denial in its place).
    Tool,
}

impl Speaker {
    /// The contract's role name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptMessage {
    /// The run it belongs to.
    pub run_id: Uuid,
    /// Who said it.
    pub role: Speaker,
    /// The text.
    pub content: String,
    /// The assistant's tool calls.
    pub tool_calls: Vec<TranscriptCall>,
    /// For a tool message: the call it answers.
    pub call: Option<TranscriptCall>,
}

/// The messages of one run, in order: the user's input, then each answer with its tool calls
/// followed by their results.
pub fn transcript_of(run_id: Uuid, events: &[RunEvent]) -> Vec<TranscriptMessage> {
    let mut messages: Vec<TranscriptMessage> = Vec::new();
    let mut calls: Vec<TranscriptCall> = Vec::new();
    let message = |role, content: String| TranscriptMessage {
        run_id,
        role,
        content,
        tool_calls: Vec::new(),
        call: None,
    };
    for event in events {
        match event {
            RunEvent::Queued { input, .. } => messages.push(message(Speaker::User, input.clone())),
            RunEvent::MessageCompleted { content, .. } => {
                messages.push(message(Speaker::Assistant, content.clone()));
            }
            RunEvent::ToolCallRequested { call, .. } => {
                let requested = TranscriptCall {
                    call_id: call.call_id,
                    model_call_id: call.model_call_id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                };
                if let Some(answer) = messages
                    .iter_mut()
                    .rev()
                    .find(|message| message.role == Speaker::Assistant)
                {
                    answer.tool_calls.push(requested.clone());
                }
                calls.push(requested);
            }
            RunEvent::ToolCallCompleted { call_id, output, .. } => {
                push_result(&mut messages, &calls, run_id, *call_id, output.clone());
            }
            RunEvent::ToolCallFailed { call_id, failure, .. } => {
                // docs/tools.md promises tool authors this form (as `ToolOutcome::for_model` has it).
                let content = format!("tool error ({}): {}", failure.code, failure.detail);
                push_result(&mut messages, &calls, run_id, *call_id, content);
            }
            RunEvent::ToolCallDenied { call_id, reason, .. } => {
                let content = if reason.is_empty() {
                    "denied: a person refused this call".to_owned()
                } else {
                    format!("denied: {reason}")
                };
                push_result(&mut messages, &calls, run_id, *call_id, content);
            }
            _ => {}
        }
    }
    messages
}

fn push_result(
    messages: &mut Vec<TranscriptMessage>,
    calls: &[TranscriptCall],
    run_id: Uuid,
    call_id: Uuid,
    content: String,
) {
    let call = calls.iter().find(|call| call.call_id == call_id).cloned();
    messages.push(TranscriptMessage {
        run_id,
        role: Speaker::Tool,
        content,
        tool_calls: Vec::new(),
        call,
    });
}
