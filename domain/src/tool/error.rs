//! Why a tool command was refused.

/// A refused tool command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// `CreateTool` for a name the organization already has a tool by.
    #[error("the organization already has a tool with this name")]
    AlreadyExists,
    /// Any other command before `CreateTool`, or after `DeleteTool`.
    #[error("tool not found")]
    NotFound,
    /// The name is not 1 to 64 of `A-Z a-z 0-9 _ -`.
    #[error("tool names must be 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`")]
    InvalidName,
    /// An update names another name: a tool's name is its identity.
    #[error("a tool's name cannot change; create a tool with the new name and delete this one")]
    NameImmutable,
    /// The description is blank.
    #[error("tool description must not be empty")]
    EmptyDescription,
    /// The description is too long.
    #[error("tool description must be at most {max} characters long")]
    DescriptionTooLong {
        /// The limit.
        max: usize,
    },
    /// The description holds a control character other than newline, carriage return or tab.
    #[error(
        "tool description must not contain control characters other than newline, carriage return and tab"
    )]
    DescriptionControlCharacter,
    /// `parameters` is not a JSON Schema object whose `type` is `"object"`.
    #[error("parameters must be a JSON Schema object with \"type\": \"object\"")]
    ParametersNotAnObject,
    /// `parameters` is too large.
    #[error("parameters must be at most {max_bytes} bytes of JSON")]
    ParametersTooLarge {
        /// The limit, in bytes of compact JSON.
        max_bytes: usize,
    },
    /// The URL does not parse, or names no host.
    #[error("url must be an absolute http or https URL with a host, without spaces")]
    InvalidUrl,
    /// The URL's scheme is neither `http` nor `https`.
    #[error("url must use http or https")]
    UrlNotHttp,
    /// The URL carries a user name or password.
    #[error("url must not contain a user name or password; the tool's secret signs each call")]
    UrlHasCredentials,
    /// The URL is too long.
    #[error("url must be at most {max_bytes} bytes long")]
    UrlTooLong {
        /// The limit, in bytes.
        max_bytes: usize,
    },
    /// `timeout_ms` is outside its range.
    #[error("timeout_ms must be between {min} and {max}")]
    TimeoutOutOfRange {
        /// The lower limit.
        min: u32,
        /// The upper limit.
        max: u32,
    },
    /// An update that changes no field.
    #[error("the update names no field to change")]
    NothingToUpdate,
}
