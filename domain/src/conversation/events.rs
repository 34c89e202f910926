//! Events of the conversation aggregate. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a conversation; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ConversationEvent {
    /// The conversation was started.
    #[serde(rename = "conversation.created")]
    Created {
        /// The organization.
        org_id: Uuid,
        /// The agent.
        agent_id: Uuid,
        /// The agent version every run uses.
        agent_version: u32,
        /// The label, when one was given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// A run was started and is now the active one.
    #[serde(rename = "conversation.run_started")]
    RunStarted {
        /// The run.
        run_id: Uuid,
        /// The user's input.
        input: String,
    },
    /// The active run ended.
    #[serde(rename = "conversation.run_ended")]
    RunEnded {
        /// The run.
        run_id: Uuid,
    },
    /// The conversation takes no new runs.
    #[serde(rename = "conversation.archived")]
    Archived,
}

impl DomainEvent for ConversationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Created { .. } => "conversation.created",
            Self::RunStarted { .. } => "conversation.run_started",
            Self::RunEnded { .. } => "conversation.run_ended",
            Self::Archived => "conversation.archived",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
