//! Events of the key prefix claim aggregate. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a key prefix; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum KeyPrefixClaimEvent {
    /// The prefix now belongs to `key_id`.
    #[serde(rename = "key_prefix_claim.claimed")]
    Claimed {
        /// The key.
        key_id: Uuid,
    },
}

impl DomainEvent for KeyPrefixClaimEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Claimed { .. } => "key_prefix_claim.claimed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
