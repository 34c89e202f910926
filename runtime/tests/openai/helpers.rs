//! Building a model pointed at a fake provider, and reading its answers.

use std::time::{Duration, Instant};

use futures::StreamExt;
use runtime::llm::{
    ChatEvent, ChatMessage, ChatModel, ChatOutcome, ChatRequest, ChatStream, LlmError, OpenAiModel,
    OpenAiSettings,
};
use secrecy::SecretString;
use testkit::FakeLlm;

pub const API_KEY: &str = "sk-test-0123456789";

/// Settings for `llm` with short delays, so retries do not slow the suite.
pub fn settings(llm: &FakeLlm) -> OpenAiSettings {
    install_crypto();
    let mut settings = OpenAiSettings::new(llm.base_url(), SecretString::from(API_KEY));
    settings.call_timeout = Duration::from_secs(5);
    settings.idle_timeout = Duration::from_secs(5);
    settings.retry_min_delay = Duration::from_millis(10);
    settings.retry_max_delay = Duration::from_millis(200);
    settings
}

/// Every test process needs the one TLS provider installed before a client is built.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn model(settings: OpenAiSettings) -> OpenAiModel {
    OpenAiModel::new(settings).expect("the model builds")
}

pub fn user(text: &str) -> ChatMessage {
    ChatMessage::User {
        content: text.to_owned(),
    }
}

pub fn request(messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        model: "gpt-test".to_owned(),
        messages,
        tools: Vec::new(),
        temperature: None,
        max_output_tokens: None,
    }
}

/// What a stream yielded: its text deltas (with when each arrived) and how it ended.
pub struct Answer {
    pub deltas: Vec<(String, Instant)>,
    pub end: Result<ChatOutcome, LlmError>,
    pub ended_at: Instant,
}

impl Answer {
    pub fn texts(&self) -> Vec<&str> {
        self.deltas.iter().map(|(text, _)| text.as_str()).collect()
    }

    pub fn outcome(&self) -> &ChatOutcome {
        self.end.as_ref().expect("the answer completed")
    }
}

/// Reads `stream` to its end; fails if it yields anything after its last event.
pub async fn read(mut stream: ChatStream) -> Answer {
    let mut deltas = Vec::new();
    let end = loop {
        match stream.next().await {
            Some(Ok(ChatEvent::TextDelta(text))) => deltas.push((text, Instant::now())),
            Some(Ok(ChatEvent::Done(outcome))) => break Ok(outcome),
            Some(Err(error)) => break Err(error),
            None => panic!("the stream ended without an outcome or an error"),
        }
    };
    let ended_at = Instant::now();
    assert!(stream.next().await.is_none(), "nothing follows the last event");
    Answer {
        deltas,
        end,
        ended_at,
    }
}

/// Asks `model` for `request` and reads the whole answer; panics if the call did not open.
pub async fn ask(model: &OpenAiModel, request: ChatRequest) -> Answer {
    read(model.stream(request).await.expect("the call opens")).await
}
