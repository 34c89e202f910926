//! What the runtime needs to call an organization's tools by name.

use std::collections::BTreeSet;
use std::time::Duration;

use domain::tool::{ToolDefinition, check_name, tool_id};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use super::secret::associated_data;
use super::{ToolService, ToolsError};

/// A tool ready to be called: its latest definition and its secret, opened. `Debug` redacts
/// the secret (it is a [`SecretString`]).
#[derive(Clone, Debug)]
pub struct ResolvedTool {
    /// The tool's id.
    pub id: Uuid,
    /// The definition's version; with `id`, the key of its compiled argument validator.
    pub version: u32,
    /// What the model calls it.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON Schema of its arguments.
    pub parameters: Value,
    /// Where to POST the arguments.
    pub url: String,
    /// How long to wait for the answer.
    pub timeout: Duration,
    /// The signing secret, in clear: sign with it, never log or record it.
    pub secret: SecretString,
}

impl ToolService {
    /// The tools of `org_id` named in `names`, each at its latest version with its secret
    /// opened, in the order of `names` (each once). A name that is not a tool of the
    /// organization (never created, deleted, or not even a valid name) is simply absent, so
    /// the runtime can answer the model that the tool does not exist.
    ///
    /// Read from the write model, so a tool created or rotated a moment ago is used at once.
    pub async fn resolve(&self, org_id: Uuid, names: &[String]) -> Result<Vec<ResolvedTool>, ToolsError> {
        let mut seen = BTreeSet::new();
        let mut resolved = Vec::with_capacity(names.len());
        for name in names {
            if check_name(name).is_err() || !seen.insert(name.as_str()) {
                continue;
            }
            let id = tool_id(org_id, name);
            let tool = self.tools.load(&id.to_string()).await?;
            let (Some(definition), Some(sealed)) = (tool.latest(), tool.secret()) else {
                continue;
            };
            if tool.org_id() != Some(org_id) {
                continue;
            }
            let secret = self
                .sealer
                .open(sealed.as_str(), &associated_data(org_id, id))
                .map_err(|reason| ToolsError::Sealing {
                    tool: name.clone(),
                    reason,
                })?;
            resolved.push(ready(id, tool.version(), definition.clone(), secret));
        }
        Ok(resolved)
    }
}

fn ready(id: Uuid, version: u32, definition: ToolDefinition, secret: SecretString) -> ResolvedTool {
    ResolvedTool {
        id,
        version,
        name: definition.name,
        description: definition.description,
        parameters: definition.parameters,
        url: definition.url,
        timeout: Duration::from_millis(u64::from(definition.timeout_ms)),
        secret,
    }
}
