//! A conversation's messages, folded from its runs' events: what `GET /v1/conversations/{id}`
//! shows and what the model is sent. The conversation view stores them (as rows it can fold
//! more events into); the events stay the record.

use domain::run::RunEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tool call as the transcript shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

    /// The speaker of a role name ([`as_str`](Self::as_str)'s inverse).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "tool" => Some(Self::Tool),
            _ => None,
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
    let mut transcript = RunTranscript::new(run_id, Vec::new());
    for event in events {
        transcript.apply(event);
    }
    transcript.messages
}

/// One run's messages so far, to which later events of the run can be added.
#[derive(Clone, Debug)]
pub struct RunTranscript {
    run_id: Uuid,
    messages: Vec<TranscriptMessage>,
    /// Every call requested so far, for the result that answers it.
    calls: Vec<TranscriptCall>,
}

impl RunTranscript {
    /// The transcript of `run_id` holding `messages` (those folded earlier, in order).
    pub fn new(run_id: Uuid, messages: Vec<TranscriptMessage>) -> Self {
        let calls = messages
            .iter()
            .flat_map(|message| message.tool_calls.iter().cloned())
            .collect();
        Self {
            run_id,
            messages,
            calls,
        }
    }

    /// The messages, in order.
    pub fn messages(&self) -> &[TranscriptMessage] {
        &self.messages
    }

    /// Whether `event_type` can change a transcript (the others need not be decoded).
    pub fn folds(event_type: &str) -> bool {
        matches!(
            event_type,
            "run.queued"
                | "message.completed"
                | "tool_call.requested"
                | "tool_call.completed"
                | "tool_call.failed"
                | "tool_call.denied"
        )
    }

    /// Adds what `event` says to the messages.
    pub fn apply(&mut self, event: &RunEvent) {
        let run_id = self.run_id;
        let messages = &mut self.messages;
        let message = |role, content: String| TranscriptMessage {
            run_id,
            role,
            content,
            tool_calls: Vec::new(),
            call: None,
        };
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
                self.calls.push(requested);
            }
            RunEvent::ToolCallCompleted { call_id, output, .. } => {
                push_result(messages, &self.calls, run_id, *call_id, output.clone());
            }
            RunEvent::ToolCallFailed { call_id, failure, .. } => {
                // docs/tools.md promises tool authors this form (as `ToolOutcome::for_model` has it).
                let content = format!("tool error ({}): {}", failure.code, failure.detail);
                push_result(messages, &self.calls, run_id, *call_id, content);
            }
            RunEvent::ToolCallDenied { call_id, reason, .. } => {
                let content = if reason.is_empty() {
                    "denied: a person refused this call".to_owned()
                } else {
                    format!("denied: {reason}")
                };
                push_result(messages, &self.calls, run_id, *call_id, content);
            }
            _ => {}
        }
    }
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
