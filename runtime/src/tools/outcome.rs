//! What a tool call ends with: the tool's answer, or a failure described for the model.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::network_guard::AddressRule;

/// How a tool call ended. Never an error that stops the run: a failure goes back to the model,
/// which may try again, try something else, or tell the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ToolOutcome {
    /// The tool answered 2xx; its body, as text (JSON or not).
    Output {
        /// The HTTP status.
        status: u16,
        /// The body, decoded as UTF-8 (invalid sequences replaced).
        body: String,
    },
    /// The call failed.
    Failed {
        /// What kind of failure, with a stable code.
        failure: ToolFailure,
        /// What went wrong, in plain words, for the model (never a secret).
        detail: String,
    },
}

impl ToolOutcome {
    /// What the model is told: the body, or the failure's code and detail.
    pub fn for_model(&self) -> String {
        match self {
            Self::Output { body, .. } => body.clone(),
            Self::Failed { failure, detail } => format!("tool error ({}): {detail}", failure.code()),
        }
    }

    pub(super) fn failed(failure: ToolFailure, detail: impl Into<String>) -> Self {
        Self::Failed {
            failure,
            detail: detail.into(),
        }
    }
}

/// Why a tool call failed. Each kind has a stable snake_case [`code`](Self::code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ToolFailure {
    /// The target resolves to an address in a refused range.
    PrivateNetwork {
        /// The rule broken.
        rule: AddressRule,
        /// The refused address.
        address: IpAddr,
    },
    /// The URL is not an absolute `http` or `https` URL with a host.
    InvalidUrl,
    /// The request could not be built (a header value a header cannot carry).
    InvalidRequest,
    /// No complete answer within the endpoint's timeout.
    Timeout,
    /// The tool could not be reached, or the connection broke.
    Connection,
    /// The tool answered with a status other than 2xx or 3xx.
    ErrorStatus {
        /// The HTTP status.
        status: u16,
    },
    /// The answer was larger than the invoker's limit.
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The tool answered 3xx; redirects are never followed.
    RedirectRefused {
        /// The HTTP status.
        status: u16,
    },
}

impl ToolFailure {
    /// The stable snake_case code of this kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PrivateNetwork { .. } => "private_network",
            Self::InvalidUrl => "invalid_url",
            Self::InvalidRequest => "invalid_request",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::ErrorStatus { .. } => "error_status",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::RedirectRefused { .. } => "redirect_refused",
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_serialized_tags() {
        let failures = [
            ToolFailure::PrivateNetwork {
                rule: AddressRule::LinkLocal,
                address: IpAddr::from([169, 254, 169, 254]),
            },
            ToolFailure::InvalidUrl,
            ToolFailure::InvalidRequest,
            ToolFailure::Timeout,
            ToolFailure::Connection,
            ToolFailure::ErrorStatus { status: 500 },
            ToolFailure::ResponseTooLarge { limit: 10 },
            ToolFailure::RedirectRefused { status: 302 },
        ];
        for failure in failures {
            let json = serde_json::to_value(failure).expect("serializable");
            assert_eq!(json["code"], failure.code());
            let back: ToolFailure = serde_json::from_value(json).expect("deserializable");
            assert_eq!(back, failure);
        }
    }

    #[test]
    fn the_model_is_told_the_code_and_the_detail() {
        let outcome = ToolOutcome::failed(ToolFailure::Timeout, "the tool did not answer within 2 s");
        assert_eq!(
            outcome.for_model(),
            "tool error (timeout): the tool did not answer within 2 s"
        );
    }
}
