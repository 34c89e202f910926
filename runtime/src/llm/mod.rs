//! Chat models behind one streaming interface.
//!
//! The executor builds a [`ChatRequest`] from the conversation so far, asks a [`ChatModel`]
//! for a [`ChatStream`], forwards each [`ChatEvent::TextDelta`] to live readers, and records
//! the [`ChatOutcome`] that ends the stream. A model never sees the store: everything it
//! returns is recorded by the executor.

mod echo;
mod models;
mod openai;
mod token_bound;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use echo::EchoModel;
pub use models::Models;
pub use openai::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_MAX_DELAY,
    DEFAULT_RETRY_MIN_DELAY, OpenAiConfigError, OpenAiModel, OpenAiSettings,
};

/// One call to a chat model.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The model's name, as the agent names it.
    pub model: String,
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature; the model's default when `None`.
    pub temperature: Option<f64>,
    /// Most tokens the answer may have; the model's default when `None`.
    pub max_output_tokens: Option<u32>,
}

/// A message of the conversation, as chat models take it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// The agent's instructions.
    System {
        /// The system prompt.
        content: String,
    },
    /// What the user said.
    User {
        /// The user's input.
        content: String,
    },
    /// What the model answered: text, tool calls, or both.
    Assistant {
        /// The text (may be empty when the model only called tools).
        content: String,
        /// The tool calls of this answer, in the model's order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// A tool's result (or error) for one call of the previous assistant message.
    Tool {
        /// The model's id of the call this answers.
        call_id: String,
        /// The output, or the error described for the model.
        content: String,
    },
}

/// A tool call as the model made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's id for the call (providers do not keep it stable across retries: never
    /// derive anything durable from it).
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them: JSON text, possibly invalid.
    pub arguments: String,
}

/// A tool as offered to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON Schema of its arguments.
    pub parameters: Value,
}

/// Tokens of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the request.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
}

/// How a model's answer ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatOutcome {
    /// The whole text (every delta joined).
    pub content: String,
    /// The tool calls, arguments joined from their pieces, in index order.
    pub tool_calls: Vec<ToolCall>,
    /// The provider's finish reason (`stop`, `tool_calls`, `length`, …).
    pub finish_reason: String,
    /// Token usage.
    pub usage: Usage,
    /// Whether the provider reported the usage (`false`: counted by us, approximately).
    pub usage_reported: bool,
    /// How many times the call was retried before it answered.
    pub retries: u32,
}

/// What a model's stream yields: text as it comes, then the outcome, last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of the answer's text.
    TextDelta(String),
    /// The answer is complete; nothing follows.
    Done(ChatOutcome),
}

/// A model's answer as it streams. Dropping it abandons the call and closes the HTTP request
/// (that is how a cancelled run stops a provider).
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, LlmError>> + Send>>;

/// Why a model call failed (after any retries).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LlmError {
    /// The provider refused or failed (status and its message).
    #[error("the model provider answered {status}: {message}")]
    Provider {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// No answer, or no progress, within the per-call timeout.
    #[error("the model did not answer within {seconds} s")]
    Timeout {
        /// The timeout.
        seconds: u64,
    },
    /// The provider could not be reached.
    #[error("the model provider could not be reached: {0}")]
    Connection(String),
    /// The provider's answer could not be read.
    #[error("the model's answer could not be read: {0}")]
    Malformed(String),
    /// No model of that name is offered.
    #[error("no model named {0} is offered")]
    UnknownModel(String),
    /// The last failure of a call retried `retries` times before giving up.
    #[error("{last} (after {retries} retries)")]
    Retried {
        /// Retries made.
        retries: u32,
        /// The last attempt's failure.
        last: Box<LlmError>,
    },
}

impl LlmError {
    /// How many times the call was retried before this failure.
    pub fn retries(&self) -> u32 {
        match self {
            Self::Retried { retries, .. } => *retries,
            _ => 0,
        }
    }

    /// The failure itself, without the retries around it.
    pub fn cause(&self) -> &LlmError {
        match self {
            Self::Retried { last, .. } => last.cause(),
            other => other,
        }
    }
}

/// A chat model.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Starts the call. Retries (when the model has any) happen before the stream yields its
    /// first event, so a retry never repeats text already streamed.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError>;
}
