//! Who caused a change: a user, an API key or the platform itself.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The principal on whose behalf a command runs.
///
/// It travels in event metadata as a string (`user:<uuid>`, `api_key:<uuid>`, `system`) and is
/// serialized in event payloads in the same string form, so an event reads the same wherever
/// it is stored or published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Actor {
    /// A signed-in user (or an administrator impersonating one; see the impersonation aggregate).
    User {
        /// The user's id.
        id: Uuid,
    },
    /// An organization's API key.
    ApiKey {
        /// The key's id (the API key aggregate id), never the secret.
        id: Uuid,
    },
    /// The platform itself: background jobs, the CLI, migrations.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User { id } => write!(f, "user:{id}"),
            Actor::ApiKey { id } => write!(f, "api_key:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// A string not of the form `user:<uuid>`, `api_key:<uuid>` or `system`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid actor `{0}`: expected `user:<uuid>`, `api_key:<uuid>` or `system`")]
pub struct ParseActorError(pub String);

impl FromStr for Actor {
    type Err = ParseActorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseActorError(s.to_owned());
        if s == "system" {
            return Ok(Actor::System);
        }
        let (kind, id) = s.split_once(':').ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        match kind {
            "user" => Ok(Actor::User { id }),
            "api_key" => Ok(Actor::ApiKey { id }),
            _ => Err(invalid()),
        }
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> Self {
        actor.to_string()
    }
}

impl TryFrom<String> for Actor {
    type Error = ParseActorError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// Written by hand: derived, the schema would be a bare string (serde sees `String`), while
/// the string form is exactly one of three shapes, which a subscriber can check.
impl JsonSchema for Actor {
    fn schema_name() -> Cow<'static, str> {
        "Actor".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Who caused a change: `user:<uuid>`, `api_key:<uuid>` or `system`.",
            "type": "string",
            "pattern": "^(system|(user|api_key):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_actor_round_trips_through_its_string_form() {
        let id = Uuid::new_v4();
        for actor in [Actor::User { id }, Actor::ApiKey { id }, Actor::System] {
            assert_eq!(actor.to_string().parse::<Actor>(), Ok(actor));
        }
        assert_eq!(Actor::ApiKey { id }.to_string(), format!("api_key:{id}"));
    }

    #[test]
    fn an_actor_serializes_as_its_string_form() {
        let id = Uuid::new_v4();
        let json = serde_json::to_value(Actor::User { id }).unwrap();
        assert_eq!(json, serde_json::json!(format!("user:{id}")));
        assert_eq!(serde_json::from_value::<Actor>(json).unwrap(), Actor::User { id });
    }

    #[test]
    fn malformed_actor_strings_are_rejected() {
        for bad in [
            "",
            "user",
            "user:not-a-uuid",
            "robot:00000000-0000-0000-0000-000000000000",
        ] {
            assert!(bad.parse::<Actor>().is_err(), "{bad} parsed");
        }
    }
}
