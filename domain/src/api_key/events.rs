//! Events of the API key aggregate. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Actor;
use crate::secret::TokenDigest;

/// What happened to an API key; internally tagged by the dotted event type.
///
/// `Debug` is written by hand so that the hash never reaches logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
        key_hash: TokenDigest,
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
