//! Events of the tool aggregate. Their JSON shapes are stored forever.
//!
//! The signing secret appears only sealed ([`SealedSecret`]): these events travel to NATS, the
//! audit export and every reader of the organization's events.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ToolDefinition;
use crate::secret::SealedSecret;

/// What happened to a tool; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ToolEvent {
    /// The tool was created (or created again after a deletion, under the same id).
    #[serde(rename = "tool.created")]
    Created {
        /// The organization the tool belongs to.
        org_id: Uuid,
        /// 1, or one more than the last version of the deleted tool of the same name, so a
        /// (tool id, version) pair always names one definition.
        version: u32,
        /// The validated definition.
        definition: ToolDefinition,
        /// The signing secret, sealed.
        secret: SealedSecret,
        /// When.
        at: DateTime<Utc>,
    },
    /// The tool got a new definition.
    #[serde(rename = "tool.updated")]
    Updated {
        /// The previous version + 1.
        version: u32,
        /// The whole new definition (not only the changed fields), so each version stands alone.
        definition: ToolDefinition,
    },
    /// The signing secret was replaced; the definition and its version are unchanged.
    #[serde(rename = "tool.secret_rotated")]
    SecretRotated {
        /// The new secret, sealed.
        secret: SealedSecret,
        /// When.
        at: DateTime<Utc>,
    },
    /// The tool was deleted.
    #[serde(rename = "tool.deleted")]
    Deleted,
}

impl DomainEvent for ToolEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Created { .. } => "tool.created",
            Self::Updated { .. } => "tool.updated",
            Self::SecretRotated { .. } => "tool.secret_rotated",
            Self::Deleted => "tool.deleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
