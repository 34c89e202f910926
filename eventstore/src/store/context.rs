use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{SecondsFormat, Utc};
use domain::Actor;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::json;
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

/// The JSON Schema of the metadata [`CommandContext::to_metadata`] writes, for the published
/// event schema (`docs/event.schema.json`). Written beside the writer, which is a map rather
/// than a type; the tests below hold the two together.
pub fn metadata_schema(generator: &mut SchemaGenerator) -> Schema {
    let uuid = |description: &str| json!({ "type": "string", "format": "uuid", "description": description });
    json_schema!({
        "description": "Who acted, for which organization, and why: the same on every event one command wrote.",
        "type": "object",
        "properties": {
            "actor": generator.subschema_for::<Actor>(),
            "org_id": uuid("The tenant; absent for platform-wide facts."),
            "request_id": { "type": "string", "description": "The HTTP request that caused the command." },
            "client_ip": { "type": "string", "description": "The client's IP address (the TCP peer, or the one a trusted proxy named)." },
            "user_agent": { "type": "string", "maxLength": MAX_USER_AGENT_BYTES, "description": "The request's `User-Agent`, cut to 256 bytes." },
            "correlation_id": uuid("Shared by every event caused, directly or not, by one outside request."),
            "causation_id": uuid("The event (or request) that directly caused the command."),
            "impersonator_id": uuid("The platform administrator acting as `actor`, when impersonating."),
            "recorded_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the writer recorded it (RFC 3339, UTC, microseconds)."
            }
        },
        "required": ["actor", "correlation_id", "recorded_at"],
        "additionalProperties": false
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use schemars::generate::SchemaSettings;
    use serde_json::{Value, json};

    use super::*;

    fn validator() -> jsonschema::Validator {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let mut schema = metadata_schema(&mut generator).to_value();
        schema["$defs"] = Value::Object(generator.take_definitions(true));
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    }

    fn full_context() -> CommandContext {
        CommandContext {
            actor: Actor::User { id: Uuid::now_v7() },
            org_id: Some(Uuid::now_v7()),
            request: Some(RequestOrigin {
                request_id: "req-1".to_owned(),
                client_ip: Some("192.0.2.7".parse().unwrap()),
                user_agent: Some("curl/8.5".to_owned()),
            }),
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            impersonator_id: Some(Uuid::now_v7()),
        }
    }

    #[test]
    fn the_metadata_schema_names_every_key_the_writer_may_write_and_requires_the_constant_ones() {
        let schema = metadata_schema(&mut SchemaSettings::draft2020_12().into_generator());
        let mut declared: Vec<&String> = schema
            .get("properties")
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let full = full_context().to_metadata();
        let mut written: Vec<&String> = full.keys().collect();
        declared.sort();
        written.sort();
        assert_eq!(declared, written);

        let minimal = CommandContext::system(None).to_metadata();
        let mut always: Vec<&str> = minimal.keys().map(String::as_str).collect();
        always.sort_unstable();
        let mut required: Vec<&str> = schema
            .get("required")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(required, always);
    }

    #[test]
    fn what_the_writer_writes_validates_and_a_stray_key_does_not() {
        let validator = validator();
        for context in [full_context(), CommandContext::system(None)] {
            let metadata = serde_json::to_value(context.to_metadata()).unwrap();
            assert!(validator.is_valid(&metadata), "{metadata}");
        }
        let mut stray = serde_json::to_value(CommandContext::system(None).to_metadata()).unwrap();
        stray["tenant"] = json!("acme");
        assert!(!validator.is_valid(&stray));
        let bad_actor = json!({ "actor": "robot", "correlation_id": Uuid::now_v7(), "recorded_at": "2026-11-25T01:32:33.067592Z" });
        assert!(!validator.is_valid(&bad_actor));
    }

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
