//! Reads of the usage view.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

/// How usage is summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Per UTC day.
    Day,
    /// Per calendar month (UTC).
    Month,
}

/// One period's usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsagePeriod {
    /// The period's first day.
    pub start: NaiveDate,
    /// Runs queued.
    pub runs: u64,
    /// Model calls completed.
    pub llm_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Credits.
    pub credits: u64,
}

/// `org_id`'s usage per `period` for the days `from..=to`, oldest first; periods without use
/// are absent.
pub async fn usage_by_period(
    pool: &PgPool,
    org_id: Uuid,
    period: Period,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<UsagePeriod>, sqlx::Error> {
    let unit = match period {
        Period::Day => "day",
        Period::Month => "month",
    };
    let rows: Vec<(NaiveDate, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT date_trunc($2, day)::date AS start, sum(runs)::bigint, sum(llm_calls)::bigint,
                sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(credits)::bigint
           FROM usage_daily
          WHERE org_id = $1 AND day BETWEEN $3 AND $4
          GROUP BY start ORDER BY start",
    )
    .bind(org_id)
    .bind(unit)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(
            |(start, runs, llm_calls, prompt_tokens, completion_tokens, credits)| UsagePeriod {
                start,
                runs: count(runs),
                llm_calls: count(llm_calls),
                prompt_tokens: count(prompt_tokens),
                completion_tokens: count(completion_tokens),
                credits: count(credits),
            },
        )
        .collect())
}

/// `org_id`'s prompt plus completion tokens on the days from `from` on: what a monthly token
/// limit counts when `from` is the first of the month.
pub async fn tokens_since(pool: &PgPool, org_id: Uuid, from: NaiveDate) -> Result<u64, sqlx::Error> {
    let tokens: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint
           FROM usage_daily WHERE org_id = $1 AND day >= $2",
    )
    .bind(org_id)
    .bind(from)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(tokens).unwrap_or(0))
}
