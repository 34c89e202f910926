//! Reads of the run history view: the run lists.

use chrono::{DateTime, Utc};
use domain::run::RunStatus;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::steps::StepView;

/// A run as the history view holds it.
#[derive(Clone, Debug)]
pub struct HistoryRun {
    /// The run.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// Where it stands.
    pub status: RunStatus,
    /// The user's input.
    pub input: String,
    /// The final answer, once completed.
    pub output: Option<String>,
    /// Why it failed: (code, detail).
    pub error: Option<(String, String)>,
    /// Its model calls and tool calls.
    pub steps: Vec<StepView>,
    /// Tokens and credits: (prompt, completion, credits).
    pub usage: (u64, u64, u64),
    /// The last stream id recorded.
    pub last_event_id: u64,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Where its queuing is in the log: the lists' cursor.
    pub position: i64,
}

/// Which runs a history page holds.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only this conversation's.
    pub conversation_id: Option<Uuid>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
}

const COLUMNS: &str = "run_id, conversation_id, status, input, output, error_code, error_detail,
    steps, prompt_tokens, completion_tokens, credits, last_event_id, queued_at, ended_at,
    queued_position";

type Row = (
    Uuid,
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Value,
    i64,
    i64,
    i64,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    i64,
);

/// Up to `limit` runs of `org_id` matching `filter`, newest first, queued before the log
/// position `before` when given.
pub async fn runs_page(
    pool: &PgPool,
    org_id: Uuid,
    filter: &RunFilter,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<HistoryRun>, sqlx::Error> {
    let query = format!(
        "SELECT {COLUMNS} FROM run_history
          WHERE org_id = $1 AND ($2::uuid IS NULL OR conversation_id = $2)
            AND ($3::text IS NULL OR status = $3)
            AND queued_position < COALESCE($4, 9223372036854775807)
          ORDER BY queued_position DESC LIMIT $5"
    );
    let rows: Vec<Row> = sqlx::query_as(&query)
        .bind(org_id)
        .bind(filter.conversation_id)
        .bind(filter.status.map(RunStatus::as_str))
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(into_run).collect()
}

fn into_run(row: Row) -> Result<HistoryRun, sqlx::Error> {
    let (
        id,
        conversation_id,
        status,
        input,
        output,
        error_code,
        error_detail,
        steps,
        prompt_tokens,
        completion_tokens,
        credits,
        last_event_id,
        queued_at,
        ended_at,
        position,
    ) = row;
    let status = RunStatus::from_name(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".to_owned(),
        source: format!("unknown run status {status:?}").into(),
    })?;
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(HistoryRun {
        id,
        conversation_id,
        status,
        input,
        output,
        error: error_code.zip(error_detail),
        steps: serde_json::from_value(steps).map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
        usage: (count(prompt_tokens), count(completion_tokens), count(credits)),
        last_event_id: count(last_event_id),
        queued_at,
        ended_at,
        position,
    })
}

/// How many of `org_id`'s runs have not ended (queued, running, awaiting approval or credits):
/// what a concurrent-run limit counts. Read through the partial index of runs not ended.
pub async fn runs_not_ended(pool: &PgPool, org_id: Uuid) -> Result<u64, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM run_history WHERE org_id = $1 AND ended_at IS NULL")
            .bind(org_id)
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
