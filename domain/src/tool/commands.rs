//! Commands of the tool aggregate.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::ToolDefinition;
use crate::secret::SealedSecret;

/// What a caller asks of a tool. The definition is validated by the aggregate; the secret
/// arrives sealed (the aggregate never sees it in clear).
#[derive(Clone, Debug, PartialEq)]
pub enum ToolCommand {
    /// Record a new tool, or a new life of a deleted one with the same name.
    CreateTool {
        /// The organization the tool belongs to.
        org_id: Uuid,
        /// The definition as given.
        definition: ToolDefinition,
        /// The signing secret, sealed for this organization and tool.
        secret: SealedSecret,
        /// When (the application's clock).
        at: DateTime<Utc>,
    },
    /// Record a new version from the latest one with `change` applied.
    UpdateTool {
        /// The fields to change; the others keep their latest value.
        change: ToolChange,
    },
    /// Replace the signing secret; the old one stops at once.
    RotateSecret {
        /// The new secret, sealed for this organization and tool.
        secret: SealedSecret,
        /// When (the application's clock).
        at: DateTime<Utc>,
    },
    /// Delete the tool: it is no longer found, and its name is free again.
    DeleteTool,
}

/// A partial update: each `Some` replaces that field of the latest definition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolChange {
    /// The name, if the caller sent one: it must be the tool's own (names never change).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New argument schema.
    pub parameters: Option<Value>,
    /// New URL.
    pub url: Option<String>,
    /// New timeout, in milliseconds.
    pub timeout_ms: Option<u32>,
}

impl ToolChange {
    /// Whether the change names no field besides (perhaps) the unchanged name.
    pub fn is_empty(&self) -> bool {
        Self {
            name: None,
            ..self.clone()
        } == Self::default()
    }
}
