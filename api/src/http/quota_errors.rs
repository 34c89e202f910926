//! Plan limits reached, as problems that name the limit and when it resets: 402 for the month's
//! tokens (paid for), 429 with `Retry-After` for rates and concurrency (they free up by
//! themselves).

use chrono::{DateTime, Utc};
use commands::quotas::{QuotaError, QuotaExceeded};
use poem::http::StatusCode;

use super::problem::{QuotaName, QuotaReached};
use super::{ApiError, ErrorCode, Problem};

/// Seconds a start refused for concurrency is told to wait: runs end on their own, so a
/// client retrying every few seconds gets in soon after one does.
pub const CONCURRENT_RUN_RETRY_AFTER: u64 = 5;

impl From<QuotaError> for ApiError {
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Exceeded(exceeded) => exceeded.into(),
            QuotaError::Identity(other) => other.into(),
        }
    }
}

impl From<QuotaExceeded> for ApiError {
    fn from(exceeded: QuotaExceeded) -> Self {
        let detail = exceeded.to_string();
        match exceeded {
            QuotaExceeded::TokensPerMonth {
                limit,
                used,
                resets_at,
            } => {
                let mut problem = Problem::new(
                    StatusCode::PAYMENT_REQUIRED,
                    ErrorCode::TokenQuotaExceeded,
                    detail,
                );
                problem.quota = Some(Box::new(QuotaReached {
                    name: QuotaName::TokensPerMonth,
                    limit,
                    used: Some(used),
                    resets_at: Some(resets_at),
                }));
                Self::from_problem(problem)
            }
            QuotaExceeded::ConcurrentRuns { limit, active } => {
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::ConcurrentRunLimit,
                    detail,
                );
                problem.quota = Some(Box::new(QuotaReached {
                    name: QuotaName::ConcurrentRuns,
                    limit: u64::from(limit),
                    used: Some(active),
                    resets_at: None,
                }));
                Self::too_many_problem(problem, CONCURRENT_RUN_RETRY_AFTER)
            }
        }
    }
}

/// 429 `organization_rate_limited`: the organization's bucket of `limit` requests per minute
/// is empty for `wait_seconds`.
pub fn organization_rate_limited(limit: u32, wait_seconds: u64, now: DateTime<Utc>) -> ApiError {
    let resets_at = now + chrono::TimeDelta::seconds(i64::try_from(wait_seconds).unwrap_or(60));
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::OrganizationRateLimited,
        format!(
            "the organization's plan allows {limit} requests per minute and they are used up; \
             retry after {wait_seconds} s"
        ),
    );
    problem.quota = Some(Box::new(QuotaReached {
        name: QuotaName::RequestsPerMinute,
        limit: u64::from(limit),
        used: None,
        resets_at: Some(resets_at),
    }));
    ApiError::too_many_problem(problem, wait_seconds)
}
