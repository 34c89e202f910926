//! An organization's agent: a versioned definition (model, prompt, tools, approval policy) that
//! conversations will pin by version.

mod aggregate;
mod commands;
mod definition;
mod error;
mod events;

pub use aggregate::Agent;
pub use commands::{AgentChange, AgentCommand};
pub use definition::{
    AgentDefinition, Approval, ApprovalMode, DEFAULT_MAX_STEPS, ECHO_MODEL, MAX_APPROVAL_TIMEOUT_SECONDS,
    MAX_MAX_STEPS, MAX_NAME_CHARS, MAX_OUTPUT_TOKENS, MAX_SYSTEM_PROMPT_BYTES, MAX_TEMPERATURE,
    MAX_TOOL_NAME_CHARS, MAX_TOOLS,
};
pub use error::AgentError;
pub use events::AgentEvent;
