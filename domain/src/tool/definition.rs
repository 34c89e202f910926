//! A tool's definition and the rules every version of it obeys.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ToolError;

/// Longest tool name, in bytes (names are ASCII).
pub const MAX_NAME_BYTES: usize = 64;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Largest `parameters` schema, in bytes of compact JSON (16 KiB).
pub const MAX_PARAMETERS_BYTES: usize = 16 * 1024;
/// Longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Shortest timeout, in milliseconds.
pub const MIN_TIMEOUT_MS: u32 = 1_000;
/// Longest timeout, in milliseconds.
pub const MAX_TIMEOUT_MS: u32 = 60_000;
/// The timeout when none is given, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// One version of an organization's HTTP tool. The signing secret is not part of it: it is
/// sealed, set and rotated on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolDefinition {
    /// What the model calls it: 1 to 64 of `A-Z a-z 0-9 _ -`, unique in the organization.
    pub name: String,
    /// What the tool does, for the model: 1 to 1024 characters, trimmed; may span lines.
    pub description: String,
    /// A JSON Schema (`"type": "object"`) of the arguments the model must send.
    pub parameters: Value,
    /// Where the runtime POSTs the arguments: `http` or `https`, no user or password.
    pub url: String,
    /// How long the runtime waits for the answer, 1 000 to 60 000 ms.
    pub timeout_ms: u32,
}

impl ToolDefinition {
    /// The definition with its description trimmed and its URL normalized, or the first rule it
    /// breaks. (That `parameters` is a valid JSON Schema is checked by the application, which
    /// has the validator; here only its shape and size.)
    pub(super) fn validated(self) -> Result<Self, ToolError> {
        check_name(&self.name)?;
        let description = self.description.trim().to_owned();
        if description.is_empty() {
            return Err(ToolError::EmptyDescription);
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ToolError::DescriptionTooLong {
                max: MAX_DESCRIPTION_CHARS,
            });
        }
        if description
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ToolError::DescriptionControlCharacter);
        }
        check_parameters(&self.parameters)?;
        let url = normalized_url(&self.url)?;
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ToolError::TimeoutOutOfRange {
                min: MIN_TIMEOUT_MS,
                max: MAX_TIMEOUT_MS,
            });
        }
        Ok(Self {
            description,
            url,
            ..self
        })
    }
}

/// The tool name rule, the same as for the tool names an agent lists: 1 to 64 of
/// `A-Z a-z 0-9 _ -` (what OpenAI-compatible providers accept as a function name).
pub fn check_name(name: &str) -> Result<(), ToolError> {
    let well_formed = (1..=MAX_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(ToolError::InvalidName)
    }
}

fn check_parameters(parameters: &Value) -> Result<(), ToolError> {
    let is_object_schema = parameters
        .as_object()
        .is_some_and(|schema| schema.get("type").and_then(Value::as_str) == Some("object"));
    if !is_object_schema {
        return Err(ToolError::ParametersNotAnObject);
    }
    // Compact JSON, as stored; a `Value` always serializes.
    let bytes = serde_json::to_vec(parameters).map_or(usize::MAX, |json| json.len());
    if bytes > MAX_PARAMETERS_BYTES {
        return Err(ToolError::ParametersTooLarge {
            max_bytes: MAX_PARAMETERS_BYTES,
        });
    }
    Ok(())
}

/// The URL as the runtime will call it (`HTTP://Example.COM` is `http://example.com/`).
fn normalized_url(text: &str) -> Result<String, ToolError> {
    if text.len() > MAX_URL_BYTES {
        return Err(ToolError::UrlTooLong {
            max_bytes: MAX_URL_BYTES,
        });
    }
    // The parser quietly drops tabs and line breaks and trims spaces; a URL holding any is
    // refused instead of being called as something other than what was written.
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ToolError::InvalidUrl);
    }
    let url = url::Url::parse(text).map_err(|_| ToolError::InvalidUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolError::UrlNotHttp);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ToolError::InvalidUrl);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ToolError::UrlHasCredentials);
    }
    if url.as_str().len() > MAX_URL_BYTES {
        return Err(ToolError::UrlTooLong {
            max_bytes: MAX_URL_BYTES,
        });
    }
    Ok(url.into())
}
