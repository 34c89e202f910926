//! `/v1/usage`: the organization's usage per day or month, from the usage view.

use chrono::{Datelike, Months, NaiveDate, TimeDelta, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use projections::usage::{Period, UsagePeriod};

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, ErrorCode};

/// The organization's usage.
pub struct UsageApi;

/// Longest range of days one `period=day` answer covers.
const MAX_DAYS: i64 = 366;
/// Longest range of months one `period=month` answer covers.
const MAX_MONTHS: u32 = 120;

/// How usage is summed.
#[derive(Enum, Clone, Copy, Default)]
#[oai(rename_all = "snake_case")]
pub enum PeriodName {
    /// Per UTC day.
    #[default]
    Day,
    /// Per calendar month (UTC).
    Month,
}

/// One period's usage.
#[derive(Object)]
struct OrganizationUsagePeriod {
    /// The period's first day (UTC).
    start: NaiveDate,
    /// Runs started.
    runs: u64,
    /// Model calls completed.
    llm_calls: u64,
    /// Prompt tokens.
    prompt_tokens: u64,
    /// Completion tokens.
    completion_tokens: u64,
    /// Credits.
    credits: u64,
}

/// Usage per period, oldest first; periods without use are left out.
#[derive(Object)]
struct OrganizationUsage {
    /// `day` or `month`.
    period: PeriodName,
    /// The first day covered.
    from: NaiveDate,
    /// The last day covered.
    to: NaiveDate,
    /// The periods with use.
    periods: Vec<OrganizationUsagePeriod>,
}

#[OpenApi(tag = "ApiTags::Usage")]
impl UsageApi {
    /// Get usage
    ///
    /// Runs, model calls, tokens and credits of the organization per UTC day or calendar
    /// month, from the usage view (kept from the events). Without `from`/`to`: the last 30
    /// days, or the last 12 months. Owners, admins and auditors.
    #[oai(path = "/usage", method = "get", operation_id = "getUsage")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// `day` (the default) or `month`.
        period: Query<Option<PeriodName>>,
        /// First day (YYYY-MM-DD, UTC).
        from: Query<Option<NaiveDate>>,
        /// Last day (YYYY-MM-DD, UTC), included.
        to: Query<Option<NaiveDate>>,
    ) -> Result<Json<OrganizationUsage>, ApiError> {
        let period_name = period.0.unwrap_or_default();
        let (period, from, to) = range(period_name, from.0, to.0)?;
        let periods = state.runs.usage(&auth.0, period, from, to).await?;
        Ok(Json(OrganizationUsage {
            period: period_name,
            from,
            to,
            periods: periods.into_iter().map(period_body).collect(),
        }))
    }
}

/// The days asked for, or the 400 saying why not.
fn range(
    period: PeriodName,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(Period, NaiveDate, NaiveDate), ApiError> {
    let to = to.unwrap_or_else(|| Utc::now().date_naive());
    let (summed, default_from) = match period {
        PeriodName::Day => (Period::Day, to - TimeDelta::days(29)),
        PeriodName::Month => (
            Period::Month,
            first_of_month(to)
                .checked_sub_months(Months::new(11))
                .unwrap_or(to),
        ),
    };
    let from = from.unwrap_or(default_from);
    let too_long = match period {
        PeriodName::Day => (to - from).num_days() >= MAX_DAYS,
        PeriodName::Month => months_between(from, to) >= i64::from(MAX_MONTHS),
    };
    if from > to || too_long {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidUsageRange,
            format!("`from` {from} and `to` {to} are not a range this route answers"),
        ));
    }
    Ok((summed, from, to))
}

/// Calendar months from `from`'s month to `to`'s.
fn months_between(from: NaiveDate, to: NaiveDate) -> i64 {
    i64::from(to.year() - from.year()) * 12 + i64::from(to.month0()) - i64::from(from.month0())
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn period_body(period: UsagePeriod) -> OrganizationUsagePeriod {
    OrganizationUsagePeriod {
        start: period.start,
        runs: period.runs,
        llm_calls: period.llm_calls,
        prompt_tokens: period.prompt_tokens,
        completion_tokens: period.completion_tokens,
        credits: period.credits,
    }
}
