//! An organization's HTTP tool: a versioned definition (name, description, argument schema,
//! URL, timeout) and a signing secret that is only ever stored sealed.
//!
//! The aggregate id is derived from the organization and the name ([`tool_id`]), so a name is
//! unique in its organization without a claim aggregate.

mod aggregate;
mod commands;
mod definition;
mod error;
mod events;

pub use aggregate::{Tool, tool_id};
pub use commands::{ToolChange, ToolCommand};
pub use definition::{
    DEFAULT_TIMEOUT_MS, MAX_DESCRIPTION_CHARS, MAX_NAME_BYTES, MAX_PARAMETERS_BYTES, MAX_TIMEOUT_MS,
    MAX_URL_BYTES, MIN_TIMEOUT_MS, ToolDefinition, check_name,
};
pub use error::ToolError;
pub use events::ToolEvent;
