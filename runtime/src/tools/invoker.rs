//! The HTTP client that calls tools, and the call itself.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url, redirect};
use thiserror::Error;

use super::network_guard::{BlockedAddress, GuardedResolver, check_literal};
use super::outcome::{ToolFailure, ToolOutcome};
use super::signature::signature_header;
use super::{ToolEndpoint, ToolRequest, response};

/// The default limit on a tool's answer: 256 KiB. An answer is text the model reads, so one
/// much larger costs more tokens than it can be worth, and the limit bounds the memory a
/// misbehaving tool can take.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Sent as `User-Agent`.
const USER_AGENT: &str = concat!("agentry/", env!("CARGO_PKG_VERSION"));

/// How the invoker treats every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolInvokerSettings {
    /// Whether tools may call loopback, private, link-local and other non-public addresses
    /// (`AGENTRY_TOOLS_ALLOW_PRIVATE_NETWORKS`; development and tests only).
    pub allow_private_networks: bool,
    /// The largest answer accepted, in bytes ([`DEFAULT_MAX_RESPONSE_BYTES`] by default); a
    /// larger one is a `response_too_large` failure, and no more than this is ever read.
    pub max_response_bytes: usize,
}

impl Default for ToolInvokerSettings {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// Why an invoker could not be built (at start-up; a call never fails this way).
#[derive(Debug, Error)]
pub enum ToolInvokerError {
    /// No rustls crypto provider is installed for the process (`main` installs ring's).
    #[error("no TLS crypto provider is installed; install rustls' ring provider first")]
    NoCryptoProvider,
    /// The HTTP client could not be built.
    #[error("the tools' HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// Calls tools over HTTP. One client (and its connection pool) for every call; cheap to clone.
#[derive(Clone, Debug)]
pub struct ToolInvoker {
    client: Client,
    settings: ToolInvokerSettings,
}

impl ToolInvoker {
    /// An invoker with one HTTP client that never follows redirects, ignores proxy settings (a
    /// proxy would resolve the target itself, past the address check) and, unless private
    /// networks are allowed, checks every resolved address.
    pub fn new(settings: ToolInvokerSettings) -> Result<Self, ToolInvokerError> {
        // reqwest panics when building a TLS client with no provider; refuse instead.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(ToolInvokerError::NoCryptoProvider);
        }
        let mut builder = Client::builder()
            .user_agent(USER_AGENT)
            .redirect(redirect::Policy::none())
            .no_proxy();
        if !settings.allow_private_networks {
            builder = builder.dns_resolver(GuardedResolver);
        }
        Ok(Self {
            client: builder.build()?,
            settings,
        })
    }

    /// The settings this invoker was built with.
    pub fn settings(&self) -> ToolInvokerSettings {
        self.settings
    }

    /// POSTs the request's arguments to the endpoint, signed, within the endpoint's timeout,
    /// and says how it ended. Never panics and never fails: every failure is a
    /// [`ToolOutcome::Failed`] for the model.
    pub async fn invoke(&self, endpoint: &ToolEndpoint, request: &ToolRequest) -> ToolOutcome {
        let outcome = match tokio::time::timeout(endpoint.timeout, self.call(endpoint, request)).await {
            Ok(outcome) => outcome,
            Err(_) => ToolOutcome::failed(
                ToolFailure::Timeout,
                format!("the tool did not answer within {}", seconds(endpoint.timeout)),
            ),
        };
        if let ToolOutcome::Failed { failure, detail } = &outcome {
            tracing::info!(
                run_id = %request.run_id,
                tool = %request.tool,
                code = failure.code(),
                detail = %detail,
                "tool call failed"
            );
        }
        outcome
    }

    async fn call(&self, endpoint: &ToolEndpoint, request: &ToolRequest) -> ToolOutcome {
        let url = match self.target(&endpoint.url) {
            Ok(url) => url,
            Err(refused) => return refused,
        };
        let body = request.arguments.to_string().into_bytes();
        let signature = signature_header(&endpoint.secret, chrono::Utc::now().timestamp(), &body);
        let headers = match headers(request, &signature) {
            Ok(headers) => headers,
            Err(refused) => return refused,
        };
        match self.client.post(url).headers(headers).body(body).send().await {
            Ok(answer) => response::outcome(answer, self.settings.max_response_bytes).await,
            Err(error) => send_failure(&error),
        }
    }

    /// The URL to call: absolute, `http` or `https`, with a host, and not a refused literal.
    fn target(&self, text: &str) -> Result<Url, ToolOutcome> {
        let invalid =
            |why: &str| ToolOutcome::failed(ToolFailure::InvalidUrl, format!("the tool's URL {why}"));
        let url = Url::parse(text).map_err(|error| invalid(&format!("is not a valid URL ({error})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(&format!(
                "has the scheme {:?}; only http and https are allowed",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if !self.settings.allow_private_networks {
            check_literal(&url).map_err(|blocked| private_network(&blocked))?;
        }
        Ok(url)
    }
}

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const RUN_ID: HeaderName = HeaderName::from_static("agentry-run-id");
const TOOL: HeaderName = HeaderName::from_static("agentry-tool");
const SIGNATURE: HeaderName = HeaderName::from_static("agentry-signature");

fn headers(request: &ToolRequest, signature: &str) -> Result<HeaderMap, ToolOutcome> {
    let values = [
        (IDEMPOTENCY_KEY, request.idempotency_key.clone()),
        (RUN_ID, request.run_id.to_string()),
        (TOOL, request.tool.clone()),
        (SIGNATURE, signature.to_owned()),
    ];
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in values {
        let value = HeaderValue::from_str(&value).map_err(|_| {
            ToolOutcome::failed(
                ToolFailure::InvalidRequest,
                format!("the {name} header cannot carry the value it was given"),
            )
        })?;
        headers.insert(name, value);
    }
    Ok(headers)
}

fn send_failure(error: &reqwest::Error) -> ToolOutcome {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(blocked) = current.downcast_ref::<BlockedAddress>() {
            return private_network(blocked);
        }
        cause = current.source();
    }
    if error.is_timeout() {
        return ToolOutcome::failed(ToolFailure::Timeout, "the tool did not answer in time");
    }
    let stage = if error.is_connect() {
        "the tool could not be reached"
    } else {
        "the request to the tool failed"
    };
    ToolOutcome::failed(ToolFailure::Connection, format!("{stage}: {}", root_cause(error)))
}

fn private_network(blocked: &BlockedAddress) -> ToolOutcome {
    ToolOutcome::failed(
        ToolFailure::PrivateNetwork {
            rule: blocked.rule,
            address: blocked.address,
        },
        format!(
            "{blocked}; tools may not call private networks (rule {})",
            blocked.rule.code()
        ),
    )
}

/// The innermost cause of an error: the OS's or the TLS library's words, without the URL
/// (reqwest's own message names the URL, which may carry a token in its query).
pub(super) fn root_cause(error: &reqwest::Error) -> String {
    let mut current: &(dyn std::error::Error + 'static) = error;
    let mut innermost = None;
    while let Some(source) = current.source() {
        innermost = Some(source);
        current = source;
    }
    match innermost {
        Some(cause) => cause.to_string(),
        None if error.is_connect() => "connection failed".to_owned(),
        None => "no further detail".to_owned(),
    }
}

fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}
