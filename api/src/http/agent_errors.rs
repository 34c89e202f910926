//! Agent outcomes as problems: one exhaustive `match` over [`AgentError`], no catch-all arm, so
//! a refusal added to the domain does not compile until it has its own status and code.

use commands::agents::AgentsError;
use domain::agent::AgentError;
use poem::http::StatusCode;

use super::{ApiError, ErrorCode};

/// One problem per agent outcome; the outcomes shared with identity are mapped as identity's.
impl From<AgentsError> for ApiError {
    fn from(error: AgentsError) -> Self {
        match error {
            AgentsError::Agent(refusal) => {
                let detail = refusal.to_string();
                let (status, code) = agent_problem(refusal);
                Self::with_status(status, code, detail)
            }
            unknown @ AgentsError::UnknownModel { .. } => Self::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::UnknownModel,
                unknown.to_string(),
            ),
            AgentsError::Identity(other) => other.into(),
        }
    }
}

fn agent_problem(error: AgentError) -> (StatusCode, ErrorCode) {
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    match error {
        AgentError::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::AgentExists),
        AgentError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::AgentNotFound),
        AgentError::VersionNotFound => (StatusCode::NOT_FOUND, ErrorCode::AgentVersionNotFound),
        AgentError::EmptyName => (INVALID, ErrorCode::AgentNameRequired),
        AgentError::NameTooLong { .. } => (INVALID, ErrorCode::AgentNameTooLong),
        AgentError::EmptyModel => (INVALID, ErrorCode::AgentModelRequired),
        AgentError::ModelTooLong { .. } => (INVALID, ErrorCode::AgentModelTooLong),
        AgentError::SystemPromptTooLong { .. } => (INVALID, ErrorCode::SystemPromptTooLong),
        AgentError::SystemPromptControlCharacter => (INVALID, ErrorCode::SystemPromptControlCharacter),
        AgentError::TooManyTools { .. } => (INVALID, ErrorCode::TooManyTools),
        AgentError::InvalidToolName => (INVALID, ErrorCode::InvalidToolName),
        AgentError::DuplicateTool => (INVALID, ErrorCode::DuplicateTool),
        AgentError::ApprovalForUnknownTool => (INVALID, ErrorCode::ApprovalForUnknownTool),
        AgentError::MaxStepsOutOfRange { .. } => (INVALID, ErrorCode::MaxStepsOutOfRange),
        AgentError::TemperatureOutOfRange { .. } => (INVALID, ErrorCode::TemperatureOutOfRange),
        AgentError::MaxOutputTokensOutOfRange { .. } => (INVALID, ErrorCode::MaxOutputTokensOutOfRange),
        AgentError::ApprovalTimeoutOutOfRange { .. } => (INVALID, ErrorCode::ApprovalTimeoutOutOfRange),
        AgentError::NothingToUpdate => (INVALID, ErrorCode::AgentUpdateEmpty),
    }
}
