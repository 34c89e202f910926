//! Why a stream stops before its run ends, as each transport tells it: SSE in a last `data:`
//! line, WebSocket in a close frame (after the same JSON as a text frame).
//!
//! Every ending says the id to resume after, so a client reconnects (with a new ticket, or new
//! credentials when those were the reason) and misses nothing.

use poem::web::websocket::CloseCode;
use serde_json::json;

use crate::http::Problem;

/// Why the server ends a stream whose run has not ended.
#[derive(Clone, Debug)]
pub enum Ending {
    /// The client fell too far behind the run (it reads slower than the run streams), or the
    /// stream broke on our side: resume after `resume_after`.
    FellBehind,
    /// The caller's credentials no longer allow reading the run (a revoked key, a removed
    /// member, a suspended organization…): the problem says which.
    Credentials(Problem),
    /// The node is shutting down: resume, on any node.
    ServerShutdown,
}

impl Ending {
    /// The `reason` the client is told.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::FellBehind => "fell_behind",
            Self::Credentials(_) => "credentials",
            Self::ServerShutdown => "server_shutdown",
        }
    }

    /// `{"type":"stream.cut_off","reason":…,"resume_after":…}`, with the credentials
    /// problem's `code` and `detail` when those are the reason.
    pub fn json(&self, resume_after: u64) -> String {
        let mut message = json!({
            "type": "stream.cut_off",
            "reason": self.reason(),
            "resume_after": resume_after,
        });
        if let Self::Credentials(problem) = self {
            message["code"] = json!(problem.code.as_str());
            message["detail"] = json!(problem.detail);
        }
        message.to_string()
    }

    /// The WebSocket close code: 1013 (try again later) for a client that fell behind, 1008
    /// (policy violation) for credentials, 1012 (service restart) for a shutdown.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::FellBehind => CloseCode::Again,
            Self::Credentials(_) => CloseCode::Policy,
            Self::ServerShutdown => CloseCode::Restart,
        }
    }

    /// The close frame's reason, well under the protocol's 123 bytes:
    /// `<reason or credentials code>; resume_after=<id>`.
    pub fn close_reason(&self, resume_after: u64) -> String {
        let what = match self {
            Self::Credentials(problem) => problem.code.as_str(),
            other => other.reason(),
        };
        format!("{what}; resume_after={resume_after}")
    }
}

/// The close reason after the run's last event (code 1000).
pub const RUN_ENDED: &str = "run_ended";

/// The longest close reason the protocol allows, in bytes.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;

    use super::{Ending, MAX_CLOSE_REASON_BYTES};
    use crate::http::{ErrorCode, Problem};

    /// The longest code any ending can name.
    fn longest_code() -> usize {
        ErrorCode::ALL
            .iter()
            .map(|code| code.as_str().len())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn every_close_reason_fits_the_protocols_limit_with_the_largest_id() {
        let revoked = Problem::new(StatusCode::UNAUTHORIZED, ErrorCode::ApiKeyRevoked, "revoked");
        for ending in [
            Ending::FellBehind,
            Ending::Credentials(revoked),
            Ending::ServerShutdown,
        ] {
            let reason = ending.close_reason(u64::MAX);
            assert!(reason.len() <= MAX_CLOSE_REASON_BYTES, "{reason}");
        }
        assert!(longest_code() + "; resume_after=".len() + 20 <= MAX_CLOSE_REASON_BYTES);
    }

    #[test]
    fn a_cut_off_names_its_reason_and_the_id_to_resume_after() {
        let message: serde_json::Value =
            serde_json::from_str(&Ending::FellBehind.json(41)).unwrap_or_default();
        assert_eq!(
            message,
            serde_json::json!({"type": "stream.cut_off", "reason": "fell_behind", "resume_after": 41})
        );
        let suspended = Problem::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OrganizationSuspended,
            "suspended",
        );
        let message: serde_json::Value =
            serde_json::from_str(&Ending::Credentials(suspended).json(7)).unwrap_or_default();
        assert_eq!(message["code"], "organization_suspended");
        assert_eq!(message["resume_after"], 7);
    }
}
