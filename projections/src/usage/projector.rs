use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use domain::run::RunEvent;
use eventstore::{Cursor, RecordedEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::BatchProjector;
use crate::decode::{payload, recorded_at};
use crate::runs::as_bigint;

/// The usage projector's name: its checkpoint key and `projections rebuild` argument.
pub const USAGE: &str = "usage";

/// Keeps `usage_daily`. Usage adds up, so unlike a row that is replaced, an event counted twice
/// would count double: each organization remembers the last log cursor it counted
/// (`usage_cursors`) and an event at or before it is skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageProjector;

/// What one day of one organization gained in a batch.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    runs: i64,
    llm_calls: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    credits: i64,
}

const SAVE_DAYS: &str = "
INSERT INTO usage_daily (org_id, day, runs, llm_calls, prompt_tokens, completion_tokens, credits)
SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
ON CONFLICT (org_id, day) DO UPDATE
   SET runs = usage_daily.runs + EXCLUDED.runs,
       llm_calls = usage_daily.llm_calls + EXCLUDED.llm_calls,
       prompt_tokens = usage_daily.prompt_tokens + EXCLUDED.prompt_tokens,
       completion_tokens = usage_daily.completion_tokens + EXCLUDED.completion_tokens,
       credits = usage_daily.credits + EXCLUDED.credits";
const SAVE_CURSORS: &str = "
INSERT INTO usage_cursors (org_id, transaction_id, position)
SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[])
ON CONFLICT (org_id) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position";

#[async_trait]
impl BatchProjector for UsageProjector {
    fn name(&self) -> &'static str {
        USAGE
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usage_daily", "usage_cursors"]
    }

    /// Only what a run's usage counts: its start, its model calls, a cancelled call.
    fn folds(&self, event: &RecordedEvent) -> bool {
        matches!(
            event.event_type.as_str(),
            "run.queued" | "llm_call.completed" | "run.cancelled"
        )
    }

    async fn fold(&self, connection: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let counted: Vec<&RecordedEvent> = events
            .iter()
            .filter(|event| BatchProjector::folds(self, event))
            .collect();
        let orgs: Vec<Uuid> = {
            let mut orgs: Vec<Uuid> = counted.iter().filter_map(|event| event.org_id).collect();
            orgs.sort_unstable();
            orgs.dedup();
            orgs
        };
        if orgs.is_empty() {
            return Ok(());
        }
        let cursors: Vec<(Uuid, i64, i64)> = sqlx::query_as(
            "SELECT org_id, transaction_id, position FROM usage_cursors WHERE org_id = ANY($1)",
        )
        .bind(&orgs)
        .fetch_all(&mut *connection)
        .await?;
        let mut counted_up_to: HashMap<Uuid, Cursor> = cursors
            .into_iter()
            .map(|(org_id, transaction_id, position)| {
                let cursor = Cursor {
                    transaction_id: u64::try_from(transaction_id).unwrap_or(0),
                    position,
                };
                (org_id, cursor)
            })
            .collect();
        let mut days: HashMap<(Uuid, NaiveDate), Totals> = HashMap::new();
        for event in counted {
            let Some(org_id) = event.org_id else { continue };
            if counted_up_to
                .get(&org_id)
                .is_some_and(|cursor| event.cursor() <= *cursor)
            {
                continue;
            }
            let totals = days
                .entry((org_id, recorded_at(event)?.date_naive()))
                .or_default();
            match payload::<RunEvent>(event)? {
                RunEvent::Queued { .. } => totals.runs += 1,
                RunEvent::LlmCallCompleted {
                    prompt_tokens,
                    completion_tokens,
                    credits,
                    ..
                } => {
                    totals.llm_calls += 1;
                    totals.prompt_tokens += as_bigint(prompt_tokens);
                    totals.completion_tokens += as_bigint(completion_tokens);
                    totals.credits += as_bigint(credits);
                }
                // A model call cancelled while it streamed is charged for what it streamed.
                RunEvent::Cancelled {
                    abandoned_call: Some(call),
                    ..
                } => {
                    totals.llm_calls += 1;
                    totals.prompt_tokens += as_bigint(call.prompt_tokens);
                    totals.completion_tokens += as_bigint(call.completion_tokens);
                    totals.credits += as_bigint(call.credits);
                }
                _ => {}
            }
            counted_up_to.insert(org_id, event.cursor());
        }
        save_days(connection, days).await?;
        save_cursors(connection, &orgs, &counted_up_to).await
    }
}

/// The days' columns, one array per column, for [`SAVE_DAYS`]: organization, day, runs, model
/// calls, prompt tokens, completion tokens, credits.
type DayColumns = (
    Vec<Uuid>,
    Vec<NaiveDate>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
);

async fn save_days(
    connection: &mut PgConnection,
    days: HashMap<(Uuid, NaiveDate), Totals>,
) -> Result<(), sqlx::Error> {
    if days.is_empty() {
        return Ok(());
    }
    let mut columns = DayColumns::default();
    for ((org_id, day), totals) in days {
        columns.0.push(org_id);
        columns.1.push(day);
        columns.2.push(totals.runs);
        columns.3.push(totals.llm_calls);
        columns.4.push(totals.prompt_tokens);
        columns.5.push(totals.completion_tokens);
        columns.6.push(totals.credits);
    }
    sqlx::query(SAVE_DAYS)
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .bind(columns.5)
        .bind(columns.6)
        .execute(connection)
        .await?;
    Ok(())
}

async fn save_cursors(
    connection: &mut PgConnection,
    orgs: &[Uuid],
    cursors: &HashMap<Uuid, Cursor>,
) -> Result<(), sqlx::Error> {
    let mut columns: (Vec<Uuid>, Vec<i64>, Vec<i64>) = Default::default();
    for org_id in orgs {
        if let Some(cursor) = cursors.get(org_id) {
            columns.0.push(*org_id);
            columns
                .1
                .push(i64::try_from(cursor.transaction_id).unwrap_or(i64::MAX));
            columns.2.push(cursor.position);
        }
    }
    sqlx::query(SAVE_CURSORS)
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .execute(connection)
        .await?;
    Ok(())
}
