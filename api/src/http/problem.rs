use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};

use super::ErrorCode;

/// An RFC 9457 problem: every error Agentry answers has this shape.
#[derive(Clone, Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:agentry:problem:<code>`.
    #[oai(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request, for a human (at most 500 characters and an ellipsis:
    /// a refused value is quoted only in part).
    #[oai(validator(max_length = 501))]
    pub detail: String,
    /// A stable snake_case code for programs (the schema lists every code with its meaning).
    pub code: ErrorCode,
    /// The run the problem is about, when there is one (`run_active`: the active run).
    pub run_id: Option<uuid::Uuid>,
    /// The plan limit reached, for `token_quota_exceeded`, `concurrent_run_limit` and
    /// `organization_rate_limited`.
    pub quota: Option<Box<QuotaReached>>,
}

/// A plan limit of the organization that refused the request.
#[derive(Clone, Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QuotaReached {
    /// Which limit.
    pub name: QuotaName,
    /// The limit.
    pub limit: u64,
    /// What counted against it when the request was refused (not for `requests_per_minute`).
    pub used: Option<u64>,
    /// When the use resets: the start of next month (UTC) for tokens, the moment a request is
    /// allowed again for requests; absent for concurrent runs, whose places free up as runs end.
    pub resets_at: Option<DateTime<Utc>>,
}

/// An organization's plan limit.
#[derive(Clone, Copy, Debug, Enum)]
#[oai(rename_all = "snake_case")]
pub enum QuotaName {
    /// Prompt plus completion tokens per calendar month (UTC).
    TokensPerMonth,
    /// Runs not ended at once.
    ConcurrentRuns,
    /// Authenticated requests per minute.
    RequestsPerMinute,
}

impl Problem {
    /// A problem of kind `code` for `status`, titled after the status.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:agentry:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: bounded(detail.into()),
            code,
            run_id: None,
            quota: None,
        }
    }
}

/// The longest `detail` a problem carries, in characters. A parser's refusal quotes the value
/// it refused, and a 1 MiB value must not come back whole in the answer (nor in a log line).
pub const MAX_DETAIL_CHARS: usize = 500;

/// `detail`, cut to [`MAX_DETAIL_CHARS`] characters with an ellipsis when longer.
fn bounded(mut detail: String) -> String {
    if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
        detail.truncate(cut);
        detail.push('…');
    }
    detail
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    #[test]
    fn a_long_detail_is_cut_at_a_character_boundary_and_a_short_one_is_kept() {
        assert_eq!(bounded("short".into()), "short");
        let long = "é".repeat(MAX_DETAIL_CHARS + 10);
        let cut = bounded(long);
        assert_eq!(cut.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}

/// Every error a `/v1` operation can answer, each as `application/problem+json`.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed or breaks a rule about its content.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The organization's credits (or its plan) do not cover this: buy credits, or wait for
    /// the limit to reset.
    #[oai(status = 402, content_type = "application/problem+json")]
    PaymentRequired(Json<Problem>),
    /// Valid credentials that may not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// Nothing here, or it belongs to another organization.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the current state (a duplicate, a lost race).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The body is larger than the documented limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The request is well-formed but a business rule refuses it.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// Something failed on our side; the detail never says what (the logs do, by request id).
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A part Agentry depends on is unavailable; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u64),
}

impl ApiError {
    /// The problem it answers, whatever its status: what a stream tells its client when a
    /// WebSocket decision or its credentials are refused, with the code the REST routes use.
    pub fn into_problem(self) -> Problem {
        match self {
            Self::BadRequest(problem)
            | Self::Unauthorized(problem)
            | Self::PaymentRequired(problem)
            | Self::Forbidden(problem)
            | Self::NotFound(problem)
            | Self::Conflict(problem)
            | Self::PayloadTooLarge(problem)
            | Self::Unprocessable(problem)
            | Self::TooManyRequests(problem, _)
            | Self::Internal(problem)
            | Self::Unavailable(problem, _) => problem.0,
        }
    }

    /// The problem for `status` (one of the statuses above; anything else is answered as 500
    /// and logged, since it means a mapping is wrong).
    pub fn with_status(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::from_problem(Problem::new(status, code, detail))
    }

    /// `problem` answered with its own status (a 4xx above without `Retry-After`; anything
    /// else is answered as 500 and logged). For problems that carry more than a code and a
    /// detail, such as `run_id`.
    pub fn from_problem(problem: Problem) -> Self {
        let (status, code) = (problem.status, problem.code);
        let problem = Json(problem);
        match StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR) {
            StatusCode::BAD_REQUEST => Self::BadRequest(problem),
            StatusCode::UNAUTHORIZED => Self::Unauthorized(problem),
            StatusCode::PAYMENT_REQUIRED => Self::PaymentRequired(problem),
            StatusCode::FORBIDDEN => Self::Forbidden(problem),
            StatusCode::NOT_FOUND => Self::NotFound(problem),
            StatusCode::CONFLICT => Self::Conflict(problem),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(problem),
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(problem),
            other => Self::internal(&format!("no problem variant for status {other} ({code})")),
        }
    }

    /// 400 with a stable code and a detail that says what to fix.
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::BadRequest(Json(Problem::new(StatusCode::BAD_REQUEST, code, detail)))
    }

    /// 401.
    pub fn unauthorized(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Unauthorized(Json(Problem::new(StatusCode::UNAUTHORIZED, code, detail)))
    }

    /// 403.
    pub fn forbidden(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Forbidden(Json(Problem::new(StatusCode::FORBIDDEN, code, detail)))
    }

    /// 404.
    pub fn not_found(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::NotFound(Json(Problem::new(StatusCode::NOT_FOUND, code, detail)))
    }

    /// 409.
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Conflict(Json(Problem::new(StatusCode::CONFLICT, code, detail)))
    }

    /// 413: something to record is over a documented size.
    pub fn payload_too_large(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::PayloadTooLarge(Json(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail)))
    }

    /// 422.
    pub fn unprocessable(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Unprocessable(Json(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)))
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        let detail = format!("rate limit exceeded; retry after {retry_after_seconds} s");
        Self::TooManyRequests(
            Json(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                detail,
            )),
            retry_after_seconds,
        )
    }

    /// 429 with `Retry-After`, for `problem` (a limit with more to say than a code).
    pub fn too_many_problem(problem: Problem, retry_after_seconds: u64) -> Self {
        Self::TooManyRequests(Json(problem), retry_after_seconds)
    }

    /// 429 with `Retry-After`, for a limit of its own (`code` says which).
    pub fn too_many(code: ErrorCode, detail: impl Into<String>, retry_after_seconds: u64) -> Self {
        Self::TooManyRequests(
            Json(Problem::new(StatusCode::TOO_MANY_REQUESTS, code, detail)),
            retry_after_seconds,
        )
    }

    /// 500: logs `error` (with the request id, from the current span) and shows nothing of it.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::Internal(Json(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "an internal error occurred; it has been logged with this request's id",
        )))
    }

    /// 500 `outcome_unknown`: logs `error` and says only that what the request records may or
    /// may not be recorded. A 500 like any failure of ours, with a code of its own because the
    /// client's next step differs: repeating blindly may do the work twice, so it repeats with
    /// its idempotency key or reads first. Only an append answers it (`StoreError::OutcomeUnknown`).
    pub fn outcome_unknown(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "the outcome of a write is unknown");
        Self::Internal(Json(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::OutcomeUnknown,
            "the database connection was lost during this request, so a change it makes may or may not be recorded; repeat it with the same Idempotency-Key, or read the resource before repeating it",
        )))
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: ErrorCode, detail: impl Into<String>, retry_after_seconds: u64) -> Self {
        Self::Unavailable(
            Json(Problem::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)),
            retry_after_seconds,
        )
    }
}
