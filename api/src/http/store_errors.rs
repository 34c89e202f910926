use eventstore::StoreError;

use super::{ApiError, ErrorCode};

/// One problem per event-store outcome. The two refusals are the caller's input (a result too
/// large to record, text holding U+0000) and get their own codes, never a 500; a lost race is
/// a 409 like every other; a write whose connection was lost has its own code (it may have been
/// recorded); the rest is ours, logged and not shown.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let detail = error.to_string();
        match error {
            StoreError::EventTooLarge { .. } => Self::payload_too_large(ErrorCode::EventTooLarge, detail),
            StoreError::UnstorableText { .. } => Self::unprocessable(ErrorCode::UnstorableText, detail),
            StoreError::Conflict { .. } => Self::conflict(ErrorCode::ConcurrentModification, detail),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                Self::unavailable(ErrorCode::DatabaseBusy, detail, super::DATABASE_BUSY_RETRY_AFTER)
            }
            StoreError::OutcomeUnknown(_) => Self::outcome_unknown(&detail),
            StoreError::Serialization { .. }
            | StoreError::SequenceGap { .. }
            | StoreError::Unexpected(_)
            | StoreError::Database(_) => Self::internal(&detail),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use eventstore::StoreError;
    use eventstore::store::MAX_EVENT_BYTES;

    use super::ApiError;

    #[test]
    fn refusals_have_their_own_codes_and_are_never_a_500() {
        let too_large = ApiError::from(StoreError::EventTooLarge {
            event_type: "tool_call.completed".into(),
            bytes: MAX_EVENT_BYTES + 1,
            limit: MAX_EVENT_BYTES,
        });
        let ApiError::PayloadTooLarge(problem) = too_large else {
            panic!("413 expected, got {too_large:?}");
        };
        assert_eq!(
            (problem.0.status, problem.0.code.as_str()),
            (413, "event_too_large")
        );
        assert!(
            problem.0.detail.contains(&MAX_EVENT_BYTES.to_string()),
            "{}",
            problem.0.detail
        );

        let nul = ApiError::from(StoreError::UnstorableText {
            event_type: "user.registered".into(),
            field: "payload".into(),
        });
        let ApiError::Unprocessable(problem) = nul else {
            panic!("422 expected, got {nul:?}");
        };
        assert_eq!(
            (problem.0.status, problem.0.code.as_str()),
            (422, "unstorable_text")
        );
        assert_eq!(problem.0.problem_type, "urn:agentry:problem:unstorable_text");
    }

    #[test]
    fn an_append_whose_outcome_is_unknown_has_its_own_code_and_other_failures_do_not() {
        let unknown = StoreError::OutcomeUnknown("no answer to the append within 5s".into());
        let ApiError::Internal(problem) = ApiError::from(unknown) else {
            panic!("500 expected");
        };
        assert_eq!(problem.0.code.as_str(), "outcome_unknown");
        assert!(!problem.0.detail.contains("5s"), "{}", problem.0.detail);

        // A lost connection the append path did not answer so (a read's): ours, nothing more.
        let lost = StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        let ApiError::Internal(problem) = ApiError::from(lost) else {
            panic!("500 expected");
        };
        assert_eq!(problem.0.code.as_str(), "internal");

        // Nothing was sent without a connection: busy, not unknown.
        let busy = ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert!(
            matches!(busy, ApiError::Unavailable(ref problem, _) if problem.0.code.as_str() == "database_busy"),
            "{busy:?}"
        );
    }

    #[test]
    fn an_internal_store_failure_shows_nothing_of_itself() {
        let error = ApiError::from(StoreError::Unexpected("transaction id \"x\"".into()));
        let ApiError::Internal(problem) = error else {
            panic!("500 expected");
        };
        assert!(!problem.0.detail.contains("transaction id"));
    }
}
