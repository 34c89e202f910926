//! Why an agent command was refused.

/// A refused agent command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// `CreateAgent` on an agent that already exists.
    #[error("agent already exists")]
    AlreadyExists,
    /// Any other command before `CreateAgent`.
    #[error("agent not found")]
    NotFound,
    /// The name is blank.
    #[error("agent name must not be empty")]
    EmptyName,
    /// The name is too long.
    #[error("agent name must be at most {max} characters long")]
    NameTooLong {
        /// The limit.
        max: usize,
    },
    /// The model is blank.
    #[error("agent model must not be empty")]
    EmptyModel,
    /// The model name is too long.
    #[error("agent model must be at most {max} characters long")]
    ModelTooLong {
        /// The limit.
        max: usize,
    },
    /// The system prompt is too large.
    #[error("system prompt must be at most {max_bytes} bytes long")]
    SystemPromptTooLong {
        /// The limit, in UTF-8 bytes.
        max_bytes: usize,
    },
    /// The system prompt holds a control character other than newline, carriage return or tab.
    #[error("system prompt must not contain control characters other than newline, carriage return and tab")]
    SystemPromptControlCharacter,
    /// More tools than allowed.
    #[error("an agent may use at most {max} tools")]
    TooManyTools {
        /// The limit.
        max: usize,
    },
    /// A tool name is not 1 to 64 of `a-z A-Z 0-9 _ -`.
    #[error("tool names must be 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`")]
    InvalidToolName,
    /// The same tool is listed twice.
    #[error("each tool may be listed only once")]
    DuplicateTool,
    /// The approval map names a tool the agent does not use.
    #[error("the approval policy names a tool that is not in the agent's tools")]
    ApprovalForUnknownTool,
    /// `max_steps` is outside its range.
    #[error("max_steps must be between 1 and {max}")]
    MaxStepsOutOfRange {
        /// The upper limit.
        max: u32,
    },
    /// `temperature` is outside its range (or not a number).
    #[error("temperature must be between 0 and {max}")]
    TemperatureOutOfRange {
        /// The upper limit.
        max: u32,
    },
    /// `max_output_tokens` is outside its range.
    #[error("max_output_tokens must be between 1 and {max}")]
    MaxOutputTokensOutOfRange {
        /// The upper limit.
        max: u32,
    },
    /// `approval_timeout_seconds` is outside its range.
    #[error("approval_timeout_seconds must be between 1 and {max}")]
    ApprovalTimeoutOutOfRange {
        /// The upper limit.
        max: u32,
    },
    /// An update that changes no field.
    #[error("the update names no field to change")]
    NothingToUpdate,
    /// A version the agent never had.
    #[error("the agent has no such version")]
    VersionNotFound,
}
