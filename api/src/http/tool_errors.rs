//! Tool outcomes as problems: one exhaustive `match` over [`ToolError`] and [`ToolsError`], no
//! catch-all arm, so a refusal added to the domain does not compile until it has its own
//! status and code.

use commands::identity::IdentityError;
use commands::tools::ToolsError;
use domain::tool::ToolError;
use poem::http::StatusCode;

use super::{ApiError, ErrorCode};

const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// One problem per tool outcome; the outcomes shared with identity are mapped as identity's.
impl From<ToolsError> for ApiError {
    fn from(error: ToolsError) -> Self {
        let detail = error.to_string();
        match error {
            ToolsError::Tool(refusal) => {
                let (status, code) = tool_problem(refusal);
                Self::with_status(status, code, detail)
            }
            ToolsError::InvalidSchema(_) => Self::with_status(INVALID, ErrorCode::InvalidToolSchema, detail),
            ToolsError::InvalidSecret => Self::with_status(INVALID, ErrorCode::InvalidToolSecret, detail),
            // The secrets key changed or the store was altered: ours, logged, never shown.
            ToolsError::Sealing { .. } => IdentityError::Internal(detail).into(),
            ToolsError::Identity(other) => other.into(),
        }
    }
}

fn tool_problem(error: ToolError) -> (StatusCode, ErrorCode) {
    match error {
        ToolError::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::ToolExists),
        ToolError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::ToolNotFound),
        ToolError::InvalidName => (INVALID, ErrorCode::InvalidToolName),
        ToolError::NameImmutable => (INVALID, ErrorCode::ToolNameImmutable),
        ToolError::EmptyDescription => (INVALID, ErrorCode::ToolDescriptionRequired),
        ToolError::DescriptionTooLong { .. } => (INVALID, ErrorCode::ToolDescriptionTooLong),
        ToolError::DescriptionControlCharacter => (INVALID, ErrorCode::ToolDescriptionControlCharacter),
        ToolError::ParametersNotAnObject => (INVALID, ErrorCode::ToolParametersNotObject),
        ToolError::ParametersTooLarge { .. } => (INVALID, ErrorCode::ToolParametersTooLarge),
        ToolError::InvalidUrl => (INVALID, ErrorCode::InvalidToolUrl),
        ToolError::UrlNotHttp => (INVALID, ErrorCode::ToolUrlNotHttp),
        ToolError::UrlHasCredentials => (INVALID, ErrorCode::ToolUrlHasCredentials),
        ToolError::UrlTooLong { .. } => (INVALID, ErrorCode::ToolUrlTooLong),
        ToolError::TimeoutOutOfRange { .. } => (INVALID, ErrorCode::ToolTimeoutOutOfRange),
        ToolError::NothingToUpdate => (INVALID, ErrorCode::ToolUpdateEmpty),
    }
}
