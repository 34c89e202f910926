//! `/v1/billing/quotas`: the organization's plan limits with their use and reset times. A
//! platform administrator sets them (`PUT /v1/admin/orgs/{id}/quotas`, in `admin.rs`).

use chrono::{DateTime, Utc};
use commands::quotas::QuotaReport;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth};

/// The organization's plan limits.
pub struct QuotasApi;

/// The window of the request-rate limit, in seconds.
const REQUESTS_WINDOW_SECONDS: u64 = 60;

/// Tokens this calendar month (UTC).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct TokenQuota {
    /// Prompt plus completion tokens allowed per month; absent: unlimited.
    limit: Option<u64>,
    /// Prompt plus completion tokens used this month, from the usage view (what
    /// `GET /v1/usage?period=month` shows).
    used: u64,
    /// When `used` starts again from zero: the start of next month (UTC).
    resets_at: DateTime<Utc>,
}

/// Runs not ended at once.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RunQuota {
    /// Runs allowed not to have ended at once; absent: unlimited. A start at the limit gets 429
    /// `concurrent_run_limit`.
    limit: Option<u32>,
    /// Runs not ended now (queued, running, awaiting approval or credits). A run ending frees
    /// its place: there is no reset time.
    used: u64,
}

/// Requests per minute.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RequestQuota {
    /// Authenticated requests allowed per minute by all the organization's credentials
    /// together, on each node; absent: unlimited. Over it: 429 `organization_rate_limited`
    /// with `Retry-After`.
    limit: Option<u32>,
    /// The window the limit counts, in seconds (60): a request used is available again a
    /// sixtieth of it later at the latest, per request of the limit.
    window_seconds: u64,
}

/// Every plan limit of the organization with its use.
#[derive(Object)]
struct QuotasResponse {
    /// Tokens per calendar month (UTC).
    tokens_per_month: TokenQuota,
    /// Concurrent runs.
    concurrent_runs: RunQuota,
    /// Requests per minute.
    requests_per_minute: RequestQuota,
    /// When these figures were read.
    as_of: DateTime<Utc>,
}

impl From<QuotaReport> for QuotasResponse {
    fn from(report: QuotaReport) -> Self {
        Self {
            tokens_per_month: TokenQuota {
                limit: report.limits.tokens_per_month,
                used: report.tokens_used,
                resets_at: report.tokens_reset_at,
            },
            concurrent_runs: RunQuota {
                limit: report.limits.concurrent_runs,
                used: report.runs_not_ended,
            },
            requests_per_minute: RequestQuota {
                limit: report.limits.requests_per_minute,
                window_seconds: REQUESTS_WINDOW_SECONDS,
            },
            as_of: report.as_of,
        }
    }
}

#[OpenApi(tag = "ApiTags::Billing")]
impl QuotasApi {
    /// Get the organization's quotas
    ///
    /// The plan limits a platform administrator set (tokens per month, concurrent runs,
    /// requests per minute; each absent when unlimited), each with its current use and, for
    /// tokens, when the use resets. Any member of the organization may read them.
    #[oai(path = "/billing/quotas", method = "get", operation_id = "getQuotas")]
    async fn get(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<QuotasResponse>, ApiError> {
        let report = state.quotas.report(&auth.0).await?;
        Ok(Json(report.into()))
    }
}
