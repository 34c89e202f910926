//! The tools a run can call: found by name for the organization, called with a key.

use std::sync::Arc;

use async_trait::async_trait;
use domain::run::ToolResult;
use serde_json::Value;
use uuid::Uuid;

use crate::llm::ToolSpec;

/// A tool of the organization, ready to be offered and called.
#[derive(Clone, Debug)]
pub struct ResolvedTool {
    /// What the model sees.
    pub spec: ToolSpec,
    /// Its definition: where and how to call it (opaque to the executor).
    pub definition: Arc<commands::tools::ResolvedTool>,
}

/// Where tools come from and how they are called.
#[async_trait]
pub trait Toolbox: Send + Sync {
    /// The tools named `names` that exist in `org_id` (missing ones are left out: the model
    /// is told when it calls one).
    async fn resolve(&self, org_id: Uuid, names: &[String]) -> Vec<ResolvedTool>;

    /// Checks the model's argument text against the tool's schema: the parsed value, or a
    /// message for the model.
    fn check_arguments(&self, tool: &ResolvedTool, arguments: &str) -> Result<Value, String>;

    /// Calls the tool. Never fails the run: every failure is a [`ToolResult::Failed`].
    async fn call(
        &self,
        tool: &ResolvedTool,
        run_id: Uuid,
        idempotency_key: &str,
        arguments: Value,
    ) -> ToolResult;
}

/// No tools at all: every call is an unknown tool.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTools;

#[async_trait]
impl Toolbox for NoTools {
    async fn resolve(&self, _org_id: Uuid, _names: &[String]) -> Vec<ResolvedTool> {
        Vec::new()
    }

    fn check_arguments(&self, _tool: &ResolvedTool, arguments: &str) -> Result<Value, String> {
        serde_json::from_str(arguments).map_err(|error| format!("the arguments are not JSON: {error}"))
    }

    async fn call(&self, tool: &ResolvedTool, _run_id: Uuid, _key: &str, _arguments: Value) -> ToolResult {
        ToolResult::Failed {
            code: "unknown_tool".to_owned(),
            detail: format!("no tool named {} is available", tool.spec.name),
        }
    }
}
