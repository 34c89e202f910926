//! Reading a tool's answer: its status decides the outcome, and its body is read chunk by chunk
//! and never held past a limit, so a tool that answers a gigabyte (or never stops) costs at
//! most the limit in memory.

use reqwest::Response;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

use super::outcome::{ToolFailure, ToolOutcome};

/// How much of an error answer's body is read and quoted to the model.
const EXCERPT_BYTES: usize = 512;

/// The outcome of a call the tool answered with `response`.
pub(super) async fn outcome(response: Response, limit: usize) -> ToolOutcome {
    let status = response.status();
    if status.is_success() {
        success(response, limit).await
    } else if status.is_redirection() {
        redirect(&response)
    } else {
        error_status(response).await
    }
}

async fn success(response: Response, limit: usize) -> ToolOutcome {
    let status = response.status();
    let too_large = || {
        ToolOutcome::failed(
            ToolFailure::ResponseTooLarge { limit },
            format!("the tool's answer is larger than the limit of {limit} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return too_large();
    }
    match read_bounded(response, limit).await {
        Ok(Body::Complete(bytes)) => ToolOutcome::Output {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        },
        Ok(Body::Exceeded(_)) => too_large(),
        Err(error) => broken_while_reading(&error),
    }
}

fn redirect(response: &Response) -> ToolOutcome {
    let status = response.status();
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|location| location.to_str().ok())
        .map(|location| format!(" to {}", excerpt(location.as_bytes(), false)))
        .unwrap_or_default();
    ToolOutcome::failed(
        ToolFailure::RedirectRefused {
            status: status.as_u16(),
        },
        format!(
            "the tool answered {}, a redirect{target}; redirects are not followed, the tool's URL must answer itself",
            status_text(status)
        ),
    )
}

async fn error_status(response: Response) -> ToolOutcome {
    let status = response.status();
    let quoted = match read_bounded(response, EXCERPT_BYTES).await {
        Ok(Body::Complete(bytes)) => excerpt(&bytes, false),
        Ok(Body::Exceeded(bytes)) => excerpt(&bytes, true),
        // The status alone says what went wrong.
        Err(_) => String::new(),
    };
    let detail = if quoted.is_empty() {
        format!("the tool answered {}", status_text(status))
    } else {
        format!("the tool answered {}: {quoted}", status_text(status))
    };
    ToolOutcome::failed(
        ToolFailure::ErrorStatus {
            status: status.as_u16(),
        },
        detail,
    )
}

/// A body read up to a limit.
enum Body {
    /// The whole body, within the limit.
    Complete(Vec<u8>),
    /// The first `limit` bytes of a longer body (the rest was not read).
    Exceeded(Vec<u8>),
}

async fn read_bounded(mut response: Response, limit: usize) -> Result<Body, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Body::Exceeded(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Body::Complete(body))
}

fn broken_while_reading(error: &reqwest::Error) -> ToolOutcome {
    ToolOutcome::failed(
        ToolFailure::Connection,
        format!(
            "the connection to the tool broke while reading its answer: {}",
            super::invoker::root_cause(error)
        ),
    )
}

/// Text for the model from the start of a body: one line, trimmed, marked when cut.
fn excerpt(bytes: &[u8], cut: bool) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if cut || bytes.len() > EXCERPT_BYTES {
        format!("{line}…")
    } else {
        line
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}
