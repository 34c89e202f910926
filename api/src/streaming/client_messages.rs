//! What a WebSocket client may send: a decision on one of the run's tool calls, or the run's
//! cancellation, with the effect, the rules and the audit record of the REST routes
//! (`approveToolCall`, `denyToolCall`, `cancelRun`). Each message gets one answer: an `ack`
//! frame, or an `error` frame with the code the REST route would answer; the socket stays open.
//!
//! ```text
//! → {"type":"approve","call_id":"…"}          ← {"type":"ack","request":"approve","call_id":"…"}
//! → {"type":"deny","call_id":"…","reason":"…"} ← {"type":"ack","request":"deny","call_id":"…"}
//! → {"type":"cancel"}                         ← {"type":"ack","request":"cancel"}
//! → anything else                             ← {"type":"error","code":"invalid_message",…}
//! ```

use std::sync::Arc;

use commands::identity::{Caller, IdentityService};
use commands::runs::RunService;
use poem::http::StatusCode;
use poem_openapi::types::ParseFromJSON;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Ending;
use crate::http::{
    ApiError, ErrorCode, OrgRateLimits, Problem, RateLimits, RequestId, TextBlock, check_rate_limits,
};
use crate::routes::AppState;

/// What answering client messages needs from the node: four handles, kept by each socket
/// instead of the whole application state.
pub(super) struct Decisions {
    identity: Arc<IdentityService>,
    rate_limits: Arc<RateLimits>,
    org_rate_limits: Arc<OrgRateLimits>,
    runs: Arc<RunService>,
}

impl Decisions {
    pub(super) fn of(state: &AppState) -> Self {
        Self {
            identity: Arc::clone(&state.identity),
            rate_limits: Arc::clone(&state.rate_limits),
            org_rate_limits: Arc::clone(&state.org_rate_limits),
            runs: Arc::clone(&state.runs),
        }
    }
}

/// A client's message.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    /// Approve the pending call `call_id` of the run's current step.
    Approve { call_id: Uuid },
    /// Deny it; the model is told, with the reason.
    Deny {
        call_id: Uuid,
        #[serde(default)]
        reason: Option<Value>,
    },
    /// Cancel the run.
    Cancel,
}

impl ClientMessage {
    /// The `request` an answer names, and the call it was about.
    fn label(&self) -> (&'static str, Option<Uuid>) {
        match self {
            Self::Approve { call_id } => ("approve", Some(*call_id)),
            Self::Deny { call_id, .. } => ("deny", Some(*call_id)),
            Self::Cancel => ("cancel", None),
        }
    }
}

/// The answer to one client message, and the ending of the stream when the caller's
/// credentials turned out not to stand any more.
pub struct Answer {
    /// The `ack` or `error` frame.
    pub frame: String,
    /// Set when the socket must close after the frame.
    pub ending: Option<Ending>,
}

/// Does what the client's `text` asks on run `run_id`, as `caller`, recorded under the
/// connection's request id.
pub(super) async fn answer(
    state: &Decisions,
    caller: &Caller,
    run_id: Uuid,
    request_id: &RequestId,
    text: &str,
) -> Answer {
    let message = match parse(text) {
        Ok(message) => message,
        Err(problem) => return refused(None, None, &problem),
    };
    let (request, call_id) = message.label();
    // Credentials are read again for every decision, as every REST request does.
    let caller = match state.identity.recheck(caller).await {
        Ok(current) => current,
        Err(error) => {
            let problem = ApiError::from(error).into_problem();
            let mut answer = refused(Some(request), call_id, &problem);
            if problem.status < 500 {
                answer.ending = Some(Ending::Credentials(problem));
            }
            return answer;
        }
    };
    if let Err(limited) = check_rate_limits(&state.rate_limits, &state.org_rate_limits, caller.ids()).await {
        return refused(Some(request), call_id, &limited.into_problem());
    }
    let recorded_as = request_id.for_events();
    let outcome = match message {
        ClientMessage::Approve { call_id } => state.runs.approve(&caller, run_id, call_id, recorded_as).await,
        ClientMessage::Deny { call_id, reason } => match reason_of(reason) {
            Ok(reason) => {
                state
                    .runs
                    .deny(&caller, run_id, call_id, reason, recorded_as)
                    .await
            }
            Err(problem) => return refused(Some(request), Some(call_id), &problem),
        },
        ClientMessage::Cancel => state.runs.cancel(&caller, run_id, recorded_as).await,
    };
    match outcome {
        Ok(()) => Answer {
            frame: with_call(json!({"type": "ack", "request": request}), call_id),
            ending: None,
        },
        Err(error) => refused(Some(request), call_id, &ApiError::from(error).into_problem()),
    }
}

/// The message, or `invalid_message` saying what is wrong with it.
fn parse(text: &str) -> Result<ClientMessage, Problem> {
    serde_json::from_str(text).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            format!(
                "not a client message ({error}); send {{\"type\":\"approve\",\"call_id\":…}}, \
                 {{\"type\":\"deny\",\"call_id\":…,\"reason\":…}} or {{\"type\":\"cancel\"}}"
            ),
        )
    })
}

/// A denial's reason by the rules of `denyToolCall`'s body: a string without control
/// characters but line breaks and tabs, left out rather than `null`; its length is the
/// domain's rule (`reason_too_long`).
fn reason_of(reason: Option<Value>) -> Result<String, Problem> {
    match reason {
        None => Ok(String::new()),
        Some(Value::Null) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NullValue,
            "`reason` is null; leave it out instead",
        )),
        Some(value) => TextBlock::parse_from_json(Some(value))
            .map(|reason| reason.0)
            .map_err(|error| {
                let code = if error.message().contains("control characters") {
                    ErrorCode::ControlCharacters
                } else {
                    ErrorCode::InvalidMessage
                };
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    code,
                    format!("`reason`: {}", error.message()),
                )
            }),
    }
}

/// `{"type":"error","request":…,"call_id":…,"status":…,"code":…,"detail":…}`; the request and
/// the call are left out when the message could not be read.
fn refused(request: Option<&str>, call_id: Option<Uuid>, problem: &Problem) -> Answer {
    let mut frame = json!({
        "type": "error",
        "status": problem.status,
        "code": problem.code.as_str(),
        "detail": problem.detail,
    });
    if let Some(request) = request {
        frame["request"] = json!(request);
    }
    Answer {
        frame: with_call(frame, call_id),
        ending: None,
    }
}

fn with_call(mut frame: Value, call_id: Option<Uuid>) -> String {
    if let Some(call_id) = call_id {
        frame["call_id"] = json!(call_id);
    }
    frame.to_string()
}

#[cfg(test)]
mod tests {
    use super::{ClientMessage, parse, reason_of};

    #[test]
    fn the_three_messages_are_read_and_anything_else_is_invalid() {
        let call = "0190b3c4-0000-7000-8000-000000000001";
        assert!(matches!(
            parse(&format!(r#"{{"type":"approve","call_id":"{call}"}}"#)),
            Ok(ClientMessage::Approve { .. })
        ));
        assert!(matches!(
            parse(&format!(r#"{{"type":"deny","call_id":"{call}","reason":"no"}}"#)),
            Ok(ClientMessage::Deny { .. })
        ));
        assert!(matches!(parse(r#"{"type":"cancel"}"#), Ok(ClientMessage::Cancel)));
        for invalid in [
            "",
            "approve",
            r#"{"type":"approve"}"#,
            r#"{"type":"approve","call_id":"not a uuid"}"#,
            r#"{"type":"subscribe"}"#,
            r#"[1,2]"#,
        ] {
            let problem = parse(invalid)
                .err()
                .unwrap_or_else(|| panic!("{invalid} was read"));
            assert_eq!(problem.code.as_str(), "invalid_message", "{invalid}");
        }
    }

    #[test]
    fn a_reason_follows_the_rest_routes_rules() {
        assert_eq!(reason_of(None).ok(), Some(String::new()));
        assert_eq!(
            reason_of(Some("line\none".into())).ok(),
            Some("line\none".to_owned())
        );
        let control = reason_of(Some("bell\u{7}".into()))
            .err()
            .map(|problem| problem.code.as_str());
        assert_eq!(control, Some("control_characters"));
        let null = reason_of(Some(serde_json::Value::Null))
            .err()
            .map(|problem| problem.code.as_str());
        assert_eq!(null, Some("null_value"));
        let number = reason_of(Some(3.into()))
            .err()
            .map(|problem| problem.code.as_str());
        assert_eq!(number, Some("invalid_message"));
    }
}
