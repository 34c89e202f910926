//! Conversation and run outcomes as problems: one exhaustive `match` per domain enum, no
//! catch-all arm, so a refusal added to the domain does not compile until it has its own status
//! and code.

use commands::runs::RunsError;
use domain::conversation::ConversationError;
use domain::run::RunError;
use poem::http::StatusCode;

use super::{ApiError, ErrorCode, Problem};

/// One problem per outcome; agent and identity outcomes are mapped as theirs are.
impl From<RunsError> for ApiError {
    fn from(error: RunsError) -> Self {
        match error {
            RunsError::Conversation(refusal) => {
                let detail = refusal.to_string();
                let run_id = match &refusal {
                    ConversationError::RunActive { run_id } => Some(*run_id),
                    _ => None,
                };
                let (status, code) = conversation_problem(refusal);
                let mut problem = Problem::new(status, code, detail);
                problem.run_id = run_id;
                Self::from_problem(problem)
            }
            RunsError::Run(refusal) => {
                let detail = refusal.to_string();
                let (status, code) = run_problem(refusal);
                Self::with_status(status, code, detail)
            }
            RunsError::Agent(refusal) => commands::agents::AgentsError::Agent(refusal).into(),
            RunsError::Billing(billing) => billing.into(),
            RunsError::Quota(exceeded) => exceeded.into(),
            RunsError::Identity(other) => other.into(),
        }
    }
}

fn conversation_problem(error: ConversationError) -> (StatusCode, ErrorCode) {
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    match error {
        ConversationError::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::ConversationExists),
        ConversationError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::ConversationNotFound),
        ConversationError::TitleTooLong { .. } => (INVALID, ErrorCode::ConversationTitleTooLong),
        ConversationError::RunActive { .. } => (StatusCode::CONFLICT, ErrorCode::RunActive),
        // Answered with the run by the service; reaching here would be a start that raced.
        ConversationError::RunAlreadyStarted { .. } => (StatusCode::CONFLICT, ErrorCode::RunExists),
        ConversationError::Archived => (StatusCode::CONFLICT, ErrorCode::ConversationArchived),
        ConversationError::EmptyInput => (INVALID, ErrorCode::InputRequired),
        ConversationError::InputTooLong { .. } => (INVALID, ErrorCode::InputTooLong),
        ConversationError::InputControlCharacter => (INVALID, ErrorCode::InputControlCharacter),
    }
}

fn run_problem(error: RunError) -> (StatusCode, ErrorCode) {
    match error {
        RunError::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::RunExists),
        RunError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::RunNotFound),
        RunError::Finished { .. } => (StatusCode::CONFLICT, ErrorCode::RunFinished),
        RunError::NotExecutor | RunError::HeldByAnother | RunError::OutOfStep(_) => {
            (StatusCode::CONFLICT, ErrorCode::RunBusy)
        }
        RunError::CallNotFound { .. } => (StatusCode::NOT_FOUND, ErrorCode::ToolCallNotFound),
        RunError::CallNotPending { .. } => (StatusCode::CONFLICT, ErrorCode::ToolCallNotPending),
        RunError::ReasonTooLong { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ReasonTooLong),
    }
}
