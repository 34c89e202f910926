//! Events of the email claim aggregate. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to an email address; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum EmailClaimEvent {
    /// The address now belongs to `user_id`.
    #[serde(rename = "email_claim.claimed")]
    Claimed {
        /// The owner.
        user_id: Uuid,
    },
}

impl DomainEvent for EmailClaimEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Claimed { .. } => "email_claim.claimed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
