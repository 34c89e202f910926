//! Commands of the agent aggregate.

use uuid::Uuid;

use super::{AgentDefinition, Approval};

/// What a caller asks of an agent. The definition is validated by the aggregate.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    /// Record a new agent (version 1).
    CreateAgent {
        /// The organization the agent belongs to.
        org_id: Uuid,
        /// The definition as given (names are trimmed by the aggregate).
        definition: AgentDefinition,
    },
    /// Record a new version from the latest one with `change` applied.
    UpdateAgent {
        /// The fields to change; the others keep their latest value.
        change: AgentChange,
    },
}

/// A partial update: each `Some` replaces that field of the latest definition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentChange {
    /// New name.
    pub name: Option<String>,
    /// New model.
    pub model: Option<String>,
    /// New system prompt.
    pub system_prompt: Option<String>,
    /// New tool list (replaces the whole list).
    pub tools: Option<Vec<String>>,
    /// New approval policy.
    pub approval: Option<Approval>,
    /// New step limit.
    pub max_steps: Option<u32>,
    /// New temperature.
    pub temperature: Option<f64>,
    /// New output token limit.
    pub max_output_tokens: Option<u32>,
    /// New approval timeout.
    pub approval_timeout_seconds: Option<u32>,
}

impl AgentChange {
    /// Whether the change names no field.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
