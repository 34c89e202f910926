use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{SecondsFormat, Utc};
use domain::Actor;
use uuid::Uuid;

/// Who is acting, for which organization, and why: copied onto every event a command writes.
///
/// The organization is part of the context rather than of each command so that no route can
/// forget it, and so the `org_id` column (derived from this metadata) scopes every event.
#[derive(Clone, Debug)]
pub struct CommandContext {
    /// The user, API key or system that issued the command.
    pub actor: Actor,
    /// The tenant; `None` only for platform-wide facts (users, platform administrators).
    pub org_id: Option<Uuid>,
    /// The HTTP request that caused the command: its id, for joining logs and events, and the
    /// client it came from, for the audit log.
    pub request: Option<RequestOrigin>,
    /// Shared by every event caused, directly or not, by one outside request.
    pub correlation_id: Uuid,
    /// The event (or request) that directly caused this command.
    pub causation_id: Option<Uuid>,
    /// The platform administrator acting as `actor`, when impersonating.
    pub impersonator_id: Option<Uuid>,
}

/// The HTTP request behind a command, as the audit log records it.
///
/// Taken when the request arrives, because nothing later can know it: the client's address is
/// the TCP peer's, or the one a trusted proxy names (`AGENTRY_TRUSTED_PROXY_HEADER`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The request id (`X-Request-Id`, echoed in the answer and on every log line).
    pub request_id: String,
    /// The client's IP address, whole (rate limits key IPv6 by /64; the record does not).
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent` header, cut to [`MAX_USER_AGENT_BYTES`].
    pub user_agent: Option<String>,
}

/// Most bytes of a `User-Agent` kept: enough for any real client, and a request cannot make
/// every event it causes large.
pub const MAX_USER_AGENT_BYTES: usize = 256;

impl RequestOrigin {
    /// A request known only by its id (tools, tests).
    pub fn id_only(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            client_ip: None,
            user_agent: None,
        }
    }

    /// `user_agent` cut to at most [`MAX_USER_AGENT_BYTES`] on a character boundary; an empty
    /// one is none.
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        let mut end = user_agent.len().min(MAX_USER_AGENT_BYTES);
        while !user_agent.is_char_boundary(end) {
            end -= 1;
        }
        let kept = user_agent[..end].trim();
        self.user_agent = (!kept.is_empty()).then(|| kept.to_owned());
        self
    }
}

impl CommandContext {
    /// A context for work the platform does on its own (background jobs, tests, benchmarks).
    pub fn system(org_id: Option<Uuid>) -> Self {
        Self {
            actor: Actor::System,
            org_id,
            request: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            impersonator_id: None,
        }
    }

    /// The id of the request that caused the command, if one did.
    pub fn request_id(&self) -> Option<&str> {
        self.request.as_ref().map(|request| request.request_id.as_str())
    }

    /// The metadata map stored with each event (cqrs-es's shape: string to string), stamped
    /// with the time of recording.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::with_capacity(9);
        metadata.insert("actor".to_owned(), self.actor.to_string());
        metadata.insert("correlation_id".to_owned(), self.correlation_id.to_string());
        metadata.insert(
            "recorded_at".to_owned(),
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        let request = self.request.as_ref();
        let optional = [
            ("org_id", self.org_id.map(|id| id.to_string())),
            ("request_id", request.map(|request| request.request_id.clone())),
            (
                "client_ip",
                request
                    .and_then(|request| request.client_ip)
                    .map(|ip| ip.to_string()),
            ),
            (
                "user_agent",
                request.and_then(|request| request.user_agent.clone()),
            ),
            ("causation_id", self.causation_id.map(|id| id.to_string())),
            ("impersonator_id", self.impersonator_id.map(|id| id.to_string())),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                metadata.insert(key.to_owned(), value);
            }
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_USER_AGENT_BYTES, RequestOrigin};

    #[test]
    fn a_long_user_agent_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_USER_AGENT_BYTES);
        let origin = RequestOrigin::id_only("r").with_user_agent(&long);
        let kept = origin.user_agent.unwrap_or_default();
        assert!(kept.len() <= MAX_USER_AGENT_BYTES && kept.len() >= MAX_USER_AGENT_BYTES - 1);
        assert!(kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_blank_user_agent_is_none() {
        assert_eq!(RequestOrigin::id_only("r").with_user_agent("  ").user_agent, None);
    }
}
