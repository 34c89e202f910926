use std::collections::HashMap;

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
    /// The HTTP request that caused the command, for joining logs and events.
    pub request_id: Option<String>,
    /// Shared by every event caused, directly or not, by one outside request.
    pub correlation_id: Uuid,
    /// The event (or request) that directly caused this command.
    pub causation_id: Option<Uuid>,
    /// The platform administrator acting as `actor`, when impersonating.
    pub impersonator_id: Option<Uuid>,
}

impl CommandContext {
    /// A context for work the platform does on its own (background jobs, tests, benchmarks).
    pub fn system(org_id: Option<Uuid>) -> Self {
        Self {
            actor: Actor::System,
            org_id,
            request_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            impersonator_id: None,
        }
    }

    /// The metadata map stored with each event (cqrs-es's shape: string to string), stamped
    /// with the time of recording.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::with_capacity(7);
        metadata.insert("actor".to_owned(), self.actor.to_string());
        metadata.insert("correlation_id".to_owned(), self.correlation_id.to_string());
        metadata.insert(
            "recorded_at".to_owned(),
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        let optional = [
            ("org_id", self.org_id.map(|id| id.to_string())),
            ("request_id", self.request_id.clone()),
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
