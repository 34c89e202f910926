//! Events of the API key aggregate. Their JSON shapes are stored forever.

use std::fmt;

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Actor;
use crate::redacted::Redacted;

/// What happened to an API key; internally tagged by the dotted event type.
///
/// `Debug` is written by hand so that the hash never reaches logs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ApiKeyEvent {
    /// The key was created.
    #[serde(rename = "api_key.created")]
    Created {
        /// The organization the key acts for.
        org_id: Uuid,
        /// The trimmed label.
        name: String,
        /// The public start of the key.
        prefix: String,
        /// Digest of the whole key.
        key_hash: String,
        /// Who created it (`user:<uuid>` form in JSON).
        created_by: Actor,
    },
    /// The key was revoked and stops working at once.
    #[serde(rename = "api_key.revoked")]
    Revoked {
        /// Who revoked it.
        by: Actor,
    },
}

impl DomainEvent for ApiKeyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Created { .. } => "api_key.created",
            Self::Revoked { .. } => "api_key.revoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl fmt::Debug for ApiKeyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created {
                org_id,
                name,
                prefix,
                created_by,
                ..
            } => f
                .debug_struct("Created")
                .field("org_id", org_id)
                .field("name", name)
                .field("prefix", prefix)
                .field("key_hash", &Redacted)
                .field("created_by", created_by)
                .finish(),
            Self::Revoked { by } => f.debug_struct("Revoked").field("by", by).finish(),
        }
    }
}
