//! Any OpenAI-compatible chat-completions endpoint, streamed, through async-openai.
//!
//! One call: the [`ChatRequest`] becomes a streaming chat-completions request
//! (`stream_options.include_usage = true`, in `request.rs`); the call is opened and retried
//! until the provider's first chunk arrives (`retry.rs`, `transport.rs`); the rest of the answer
//! streams through `stream.rs`, which joins text and tool-call pieces into the
//! [`ChatOutcome`](super::ChatOutcome).
//!
//! # Settings the `agentry` binary should expose
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `AGENTRY_LLM_BASE_URL` | unset | the endpoint's base, e.g. `https://api.openai.com/v1` (the model posts to `{base}/chat/completions`); unset: only the built-in `echo` model is offered |
//! | `AGENTRY_LLM_API_KEY` | unset | sent as `Authorization: Bearer …`; never logged, and removed from provider messages we pass on |
//! | `AGENTRY_LLM_MODELS` | unset | optional comma-separated allow-list of model names ([`Models::with_provider`](super::Models::with_provider)); unset: any name is passed to the provider |
//! | `AGENTRY_LLM_TIMEOUT_SECONDS` | 60 | [`OpenAiSettings::call_timeout`]: from sending a request to the provider's first chunk |
//! | `AGENTRY_LLM_IDLE_TIMEOUT_SECONDS` | 30 | [`OpenAiSettings::idle_timeout`]: longest silence between two chunks |
//! | `AGENTRY_LLM_MAX_RETRIES` | 3 | [`OpenAiSettings::max_retries`]: retries on 429, 5xx and connection errors |
//!
//! The binary must install rustls' ring provider
//! (`rustls::crypto::ring::default_provider().install_default()`) before building the model:
//! reqwest is built without a TLS provider of its own.
//!
//! # Why not async-openai's own retries
//!
//! async-openai 0.43's default executor wraps every call in its `OpenAIRetryLayer` (three
//! retries on 429, 5xx and connect errors, its own backoff, and a 429 whose body is not JSON
//! turned into a deserialization error). We install our own tower service instead
//! (`transport::Transport`, through the `middleware` feature), which retries nothing and
//! keeps the status, `Retry-After` and message of a refused call; retries are ours, in
//! `retry.rs`, so that they are counted, jittered and never happen after text has streamed.

mod request;
mod retry;
mod stream;
mod transport;
mod usage;

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{ChatCompletionResponseStream, CreateChatCompletionRequest};
use async_trait::async_trait;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use super::{ChatModel, ChatRequest, ChatStream, LlmError};
use retry::{Failure, RetryPolicy};
use transport::{Redactor, Transport};

/// How long a call may take to produce its first chunk, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest silence between two chunks, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a call refused with 429 or 5xx or not connected, by default.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// The first retry's delay before jitter, by default (it doubles with each retry).
pub const DEFAULT_RETRY_MIN_DELAY: Duration = Duration::from_millis(500);
/// The longest wait before a retry, by default; a longer `Retry-After` is cut to it.
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(20);

/// Where the provider is and how patiently to call it.
#[derive(Clone, Debug)]
pub struct OpenAiSettings {
    /// The endpoint's base URL, e.g. `https://api.openai.com/v1`; requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// The API key, sent as a bearer token.
    pub api_key: SecretString,
    /// From sending a request to the provider's first chunk (headers alone do not count: a
    /// provider that answers `200` and then says nothing has not answered). Each attempt
    /// gets this much; a timeout is not retried. Reasoning models can think for a while
    /// before their first token, hence the generous default of 60 s.
    pub call_timeout: Duration,
    /// The longest silence between two chunks once the answer streams (default 30 s); past
    /// it the call stalled and fails with [`LlmError::Timeout`].
    pub idle_timeout: Duration,
    /// How many times a call refused with 429 or 5xx, or not connected, is tried again
    /// (default 3, so four attempts at most).
    pub max_retries: u32,
    /// The first retry's delay before jitter (default 0.5 s); it doubles with each retry.
    pub retry_min_delay: Duration,
    /// The longest wait before one retry (default 20 s), the provider's `Retry-After`
    /// included.
    pub retry_max_delay: Duration,
}

impl OpenAiSettings {
    /// Settings for `base_url` with `api_key` and every other field at its default.
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_min_delay: DEFAULT_RETRY_MIN_DELAY,
            retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
        }
    }
}

/// Why an [`OpenAiModel`] could not be built from its settings.
#[derive(Debug, Error)]
pub enum OpenAiConfigError {
    /// The base URL is not an absolute http(s) URL.
    #[error("the model provider's base URL {0:?} is not an http(s) URL")]
    BaseUrl(String),
    /// The key cannot be sent in a header (async-openai would panic on it).
    #[error("the model provider's API key holds characters an HTTP header cannot carry")]
    ApiKey,
    /// The HTTP client could not be built.
    #[error("the HTTP client for the model provider could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// A chat model served by an OpenAI-compatible endpoint. Any model name is passed through;
/// which names are offered is [`Models`](super::Models)' business. Cheap to share: build one
/// per process.
#[derive(Clone)]
pub struct OpenAiModel {
    client: Client<OpenAIConfig>,
    call_timeout: Duration,
    idle_timeout: Duration,
    retry: RetryPolicy,
    redactor: Redactor,
}

impl OpenAiModel {
    /// The model for `settings`. Needs a rustls crypto provider installed in the process.
    pub fn new(settings: OpenAiSettings) -> Result<Self, OpenAiConfigError> {
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(OpenAiConfigError::BaseUrl(settings.base_url)),
        }
        let bearer = format!("Bearer {}", settings.api_key.expose_secret());
        if reqwest::header::HeaderValue::from_str(&bearer).is_err() {
            return Err(OpenAiConfigError::ApiKey);
        }
        // Connecting is part of the call's first-chunk budget; no overall timeout, which
        // would cut long answers.
        let http = reqwest::Client::builder()
            .connect_timeout(settings.call_timeout)
            .build()
            .map_err(OpenAiConfigError::Client)?;
        // Org and project set empty on purpose: `OpenAIConfig` would otherwise read
        // `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID` from the environment.
        let config = OpenAIConfig::new()
            .with_api_base(base_url)
            .with_api_key(settings.api_key.expose_secret())
            .with_org_id("")
            .with_project_id("");
        let client = Client::with_config(config).with_http_service(Transport::new(http));
        Ok(Self {
            client,
            call_timeout: settings.call_timeout,
            idle_timeout: settings.idle_timeout,
            retry: RetryPolicy {
                max_retries: settings.max_retries,
                min_delay: settings.retry_min_delay,
                max_delay: settings.retry_max_delay,
            },
            redactor: Redactor::new(settings.api_key),
        })
    }

    /// One attempt: sends the request and waits for the first chunk, within the call
    /// timeout.
    async fn open(&self, body: &CreateChatCompletionRequest) -> Result<Opened, Failure> {
        let attempt = async {
            let mut chunks = self
                .client
                .chat()
                .create_stream(body.clone())
                .await
                .map_err(Failure::from)?;
            match chunks.next().await {
                Some(Ok(first)) => Ok(Opened { first, chunks }),
                Some(Err(error)) => Err(Failure::from(error)),
                None => Err(Failure::Malformed(
                    "the provider ended the stream before its first chunk".to_owned(),
                )),
            }
        };
        tokio::time::timeout(self.call_timeout, attempt)
            .await
            .unwrap_or(Err(Failure::Timeout(self.call_timeout)))
    }
}

/// A call the provider has started answering.
struct Opened {
    first: async_openai::types::chat::CreateChatCompletionStreamResponse,
    chunks: ChatCompletionResponseStream,
}

#[async_trait]
impl ChatModel for OpenAiModel {
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let body = request::chat_completion_request(&request);
        let (opened, retries) = self.retry.run(|| self.open(&body)).await;
        let opened = opened.map_err(|failure| match failure.into_llm_error(&self.redactor) {
            last if retries > 0 => LlmError::Retried {
                retries,
                last: Box::new(last),
            },
            last => last,
        })?;
        let assembly = stream::Assembly::new(usage::request_chars(&request), retries);
        Ok(stream::answer(
            opened.first,
            opened.chunks,
            assembly,
            self.idle_timeout,
            self.redactor.clone(),
        ))
    }
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OpenAiModel")
            .field(
                "base_url",
                &async_openai::config::Config::api_base(self.client.config()),
            )
            .field("call_timeout", &self.call_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
