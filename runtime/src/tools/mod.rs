//! Calling an organization's HTTP tools: signed, bounded in time and size, and refused when
//! the target is a private address (unless allowed). Every failure is an outcome the model is
//! told about, never an error that stops the run.
//!
//! The executor records a tool call's "started" event (carrying the idempotency key) before
//! it calls [`ToolInvoker::invoke`], and records the [`ToolOutcome`] it returns. A call that
//! started and has no recorded outcome after a crash is invoked again with the same key: tool
//! calls are at-least-once, and the key is how a tool recognises a repeat (`docs/tools.md`).
//!
//! - [`invoker`](ToolInvoker): the HTTP client and the call itself.
//! - `signature`: the `Agentry-Signature` header (HMAC-SHA256 over timestamp and body).
//! - `network_guard`: which addresses are refused, checked on every resolved address.
//! - `response`: reading the answer without ever holding more than the limit.
//! - `outcome`: what a call ends with.

mod invoker;
mod network_guard;
mod outcome;
mod response;
mod signature;

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

pub use invoker::{DEFAULT_MAX_RESPONSE_BYTES, ToolInvoker, ToolInvokerError, ToolInvokerSettings};
pub use network_guard::{AddressRule, classify_address};
pub use outcome::{ToolFailure, ToolOutcome};
pub use signature::{SIGNATURE_HEADER, signature_header};

/// Where and how to call one tool: what the tool's definition says.
#[derive(Clone, Debug)]
pub struct ToolEndpoint {
    /// The URL the arguments are POSTed to (`http` or `https`).
    pub url: String,
    /// The key of the `Agentry-Signature` HMAC, shared with the tool's server.
    pub secret: SecretString,
    /// How long the whole call may take: connecting, sending, and reading the whole answer.
    pub timeout: Duration,
}

/// One call of a tool, as the run decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolRequest {
    /// The run making the call (sent as `Agentry-Run-Id`).
    pub run_id: Uuid,
    /// The tool's name (sent as `Agentry-Tool`).
    pub tool: String,
    /// Derived from the run and the step, so every retry of this call carries the same key
    /// (sent as `Idempotency-Key`).
    pub idempotency_key: String,
    /// The arguments, already checked against the tool's schema; sent as the JSON body.
    pub arguments: Value,
}
