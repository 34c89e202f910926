//! Events of the agent aggregate. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AgentDefinition;

/// What happened to an agent; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum AgentEvent {
    /// The agent was created; its first definition is version 1.
    #[serde(rename = "agent.created")]
    Created {
        /// The organization the agent belongs to.
        org_id: Uuid,
        /// Always 1.
        version: u32,
        /// The validated definition.
        definition: AgentDefinition,
    },
    /// The agent got a new definition; earlier versions stay as they were.
    #[serde(rename = "agent.updated")]
    Updated {
        /// The previous version + 1.
        version: u32,
        /// The whole new definition (not only the changed fields), so each version stands alone.
        definition: AgentDefinition,
    },
}

impl DomainEvent for AgentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Created { .. } => "agent.created",
            Self::Updated { .. } => "agent.updated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
