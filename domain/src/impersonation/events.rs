//! Events of the impersonation aggregate. Their JSON shapes are stored forever.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to an impersonation; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ImpersonationEvent {
    /// An administrator began acting as a user.
    #[serde(rename = "impersonation.started")]
    Started {
        /// The platform administrator.
        admin_user_id: Uuid,
        /// The user impersonated.
        user_id: Uuid,
        /// The organization.
        org_id: Uuid,
        /// The trimmed reason.
        reason: String,
        /// When it began.
        started_at: DateTime<Utc>,
        /// When it stops.
        expires_at: DateTime<Utc>,
    },
    /// The administrator stopped before the time limit.
    #[serde(rename = "impersonation.ended")]
    Ended,
}

impl DomainEvent for ImpersonationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Started { .. } => "impersonation.started",
            Self::Ended => "impersonation.ended",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
