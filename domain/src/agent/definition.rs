//! An agent's definition and the rules every version of it obeys.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AgentError;
use crate::text::{TextError, trimmed};

/// Longest agent name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest model name, in characters.
pub const MAX_MODEL_CHARS: usize = 100;
/// Largest system prompt, in UTF-8 bytes (32 KiB).
pub const MAX_SYSTEM_PROMPT_BYTES: usize = 32 * 1024;
/// Most tools one agent may use.
pub const MAX_TOOLS: usize = 32;
/// Longest tool name, in characters.
pub const MAX_TOOL_NAME_CHARS: usize = 64;
/// Highest `max_steps`.
pub const MAX_MAX_STEPS: u32 = 100;
/// `max_steps` when none is given.
pub const DEFAULT_MAX_STEPS: u32 = 10;
/// Highest temperature.
pub const MAX_TEMPERATURE: u32 = 2;
/// Highest `max_output_tokens`.
pub const MAX_OUTPUT_TOKENS: u32 = 32_768;
/// Longest approval timeout, in seconds (7 days).
pub const MAX_APPROVAL_TIMEOUT_SECONDS: u32 = 7 * 24 * 3600;
/// The built-in development model, always available.
pub const ECHO_MODEL: &str = "echo";

/// Whether a tool call waits for a person's approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Tool calls run at once.
    Never,
    /// Every tool call waits for approval.
    Always,
}

/// The approval policy: one mode for every tool, or a mode per tool (tools not named run
/// without approval).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Approval {
    /// The same mode for every tool.
    All(ApprovalMode),
    /// A mode per named tool.
    PerTool(BTreeMap<String, ApprovalMode>),
}

impl Default for Approval {
    fn default() -> Self {
        Self::All(ApprovalMode::Never)
    }
}

/// One version of an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentDefinition {
    /// A label for people, trimmed, 1 to 100 characters.
    pub name: String,
    /// The model's name, trimmed, 1 to 100 characters; `echo` is built in.
    pub model: String,
    /// Instructions given to the model before the conversation; may span lines.
    pub system_prompt: String,
    /// The tools the agent may call, each named once.
    pub tools: Vec<String>,
    /// Which tool calls wait for approval.
    pub approval: Approval,
    /// Most model steps one run may take.
    pub max_steps: u32,
    /// Sampling temperature, 0 to 2; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Most tokens one model answer may produce; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Seconds a tool call may wait for approval before it is denied with reason `expired`;
    /// it waits as long as it takes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_seconds: Option<u32>,
}

impl AgentDefinition {
    /// The definition with names trimmed, or the first rule it breaks.
    pub(super) fn validated(self) -> Result<Self, AgentError> {
        let name = trimmed(&self.name, MAX_NAME_CHARS, false).map_err(|e| match e {
            TextError::Empty => AgentError::EmptyName,
            TextError::TooLong => AgentError::NameTooLong { max: MAX_NAME_CHARS },
        })?;
        let model = trimmed(&self.model, MAX_MODEL_CHARS, false).map_err(|e| match e {
            TextError::Empty => AgentError::EmptyModel,
            TextError::TooLong => AgentError::ModelTooLong { max: MAX_MODEL_CHARS },
        })?;
        check_system_prompt(&self.system_prompt)?;
        check_tools(&self.tools)?;
        if let Approval::PerTool(per_tool) = &self.approval
            && per_tool.keys().any(|tool| !self.tools.contains(tool))
        {
            return Err(AgentError::ApprovalForUnknownTool);
        }
        if !(1..=MAX_MAX_STEPS).contains(&self.max_steps) {
            return Err(AgentError::MaxStepsOutOfRange { max: MAX_MAX_STEPS });
        }
        if let Some(t) = self.temperature
            && !(0.0..=f64::from(MAX_TEMPERATURE)).contains(&t)
        {
            return Err(AgentError::TemperatureOutOfRange { max: MAX_TEMPERATURE });
        }
        if let Some(tokens) = self.max_output_tokens
            && !(1..=MAX_OUTPUT_TOKENS).contains(&tokens)
        {
            return Err(AgentError::MaxOutputTokensOutOfRange {
                max: MAX_OUTPUT_TOKENS,
            });
        }
        if let Some(seconds) = self.approval_timeout_seconds
            && !(1..=MAX_APPROVAL_TIMEOUT_SECONDS).contains(&seconds)
        {
            return Err(AgentError::ApprovalTimeoutOutOfRange {
                max: MAX_APPROVAL_TIMEOUT_SECONDS,
            });
        }
        Ok(Self { name, model, ..self })
    }
}

fn check_system_prompt(prompt: &str) -> Result<(), AgentError> {
    if prompt.len() > MAX_SYSTEM_PROMPT_BYTES {
        return Err(AgentError::SystemPromptTooLong {
            max_bytes: MAX_SYSTEM_PROMPT_BYTES,
        });
    }
    if prompt
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(AgentError::SystemPromptControlCharacter);
    }
    Ok(())
}

fn check_tools(tools: &[String]) -> Result<(), AgentError> {
    if tools.len() > MAX_TOOLS {
        return Err(AgentError::TooManyTools { max: MAX_TOOLS });
    }
    let well_formed = |name: &String| {
        (1..=MAX_TOOL_NAME_CHARS).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !tools.iter().all(well_formed) {
        return Err(AgentError::InvalidToolName);
    }
    if tools.iter().collect::<BTreeSet<_>>().len() != tools.len() {
        return Err(AgentError::DuplicateTool);
    }
    Ok(())
}
