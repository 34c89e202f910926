//! The organization's HTTP tools: found through the tools resource, arguments checked against
//! each tool's schema, called by the signing, bounded [`ToolInvoker`].

use std::sync::Arc;

use async_trait::async_trait;
use commands::tools::{ArgumentValidators, ToolService};
use domain::run::ToolResult;
use serde_json::Value;
use uuid::Uuid;

use super::{ResolvedTool, Toolbox};
use crate::llm::ToolSpec;
use crate::tools::{ToolEndpoint, ToolInvoker, ToolOutcome, ToolRequest};

/// Tools from the tools resource, called over HTTP.
pub struct HttpToolbox {
    tools: Arc<ToolService>,
    validators: ArgumentValidators,
    invoker: ToolInvoker,
}

impl HttpToolbox {
    /// Over the tools resource, calling through `invoker`.
    pub fn new(tools: Arc<ToolService>, invoker: ToolInvoker) -> Self {
        Self {
            tools,
            validators: ArgumentValidators::default(),
            invoker,
        }
    }
}

#[async_trait]
impl Toolbox for HttpToolbox {
    async fn resolve(&self, org_id: Uuid, names: &[String]) -> Vec<ResolvedTool> {
        match self.tools.resolve(org_id, names).await {
            Ok(tools) => tools
                .into_iter()
                .map(|tool| ResolvedTool {
                    spec: ToolSpec {
                        name: tool.name.clone(),
                        description: tool.description.clone(),
                        parameters: tool.parameters.clone(),
                    },
                    definition: Arc::new(tool),
                })
                .collect(),
            Err(error) => {
                // The model is told at its first call of a tool it cannot have.
                tracing::warn!(%error, org = %org_id, "tools could not be resolved");
                Vec::new()
            }
        }
    }

    fn check_arguments(&self, tool: &ResolvedTool, arguments: &str) -> Result<Value, String> {
        self.validators
            .check(&tool.definition, arguments)
            .map_err(|error| error.to_string())
    }

    async fn call(
        &self,
        tool: &ResolvedTool,
        run_id: Uuid,
        idempotency_key: &str,
        arguments: Value,
    ) -> ToolResult {
        let definition = &tool.definition;
        let endpoint = ToolEndpoint {
            url: definition.url.clone(),
            secret: definition.secret.clone(),
            timeout: definition.timeout,
        };
        let request = ToolRequest {
            run_id,
            tool: definition.name.clone(),
            idempotency_key: idempotency_key.to_owned(),
            arguments,
        };
        match self.invoker.invoke(&endpoint, &request).await {
            ToolOutcome::Output { body, .. } => ToolResult::Output(body),
            ToolOutcome::Failed { failure, detail } => ToolResult::Failed {
                code: failure.code().to_owned(),
                detail,
            },
        }
    }
}
