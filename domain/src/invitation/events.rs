//! Events of the invitation aggregate. Their JSON shapes are stored forever.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::email::EmailAddress;
use crate::role::Role;
use crate::secret::TokenDigest;

/// What happened to an invitation; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum InvitationEvent {
    /// An invitation was mailed.
    #[serde(rename = "invitation.sent")]
    Sent {
        /// The organization to join.
        org_id: Uuid,
        /// The invited address (normalized).
        email: EmailAddress,
        /// The role the invitee gets.
        role: Role,
        /// Digest of the mailed token.
        token_hash: TokenDigest,
        /// When the token stops working.
        expires_at: DateTime<Utc>,
        /// The member who invited.
        invited_by: Uuid,
    },
    /// The invitee accepted; the token is spent.
    #[serde(rename = "invitation.accepted")]
    Accepted {
        /// The user who accepted (logged in as the invited address).
        user_id: Uuid,
    },
}

impl DomainEvent for InvitationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Sent { .. } => "invitation.sent",
            Self::Accepted { .. } => "invitation.accepted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
