use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::run::{Run, RunEvent};
use eventstore::RecordedEvent;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::steps::{StepView, apply_to_steps};
use crate::BatchProjector;
use crate::decode::{payload, recorded_at};
use crate::grouped::by_aggregate;

/// The run history projector's name: its checkpoint key and `projections rebuild` argument.
pub const RUN_HISTORY: &str = "run_history";

/// Keeps `run_history`: each read of the log is folded in memory into the rows of the runs it
/// touches (read once, written once), so a rebuild goes at the speed of reading the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunHistoryProjector;

/// A run's row while a batch is folded into it.
struct Row {
    run: Run,
    steps: Vec<StepView>,
    input: String,
    output: Option<String>,
    error: Option<(String, String)>,
    /// When and where in the log it was queued.
    queued: Option<(DateTime<Utc>, i64)>,
    ended_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    version: i64,
}

const LOAD: &str = "
SELECT run_id, state, steps, input, output, error_code, error_detail, queued_at, queued_position,
       ended_at, version
  FROM run_history WHERE run_id = ANY($1)";

type Loaded = (
    Uuid,
    Value,
    Value,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    i64,
    Option<DateTime<Utc>>,
    i64,
);

/// Every changed row written in one statement; a row already further along (an event delivered
/// again after a later one) is left as it is.
const SAVE: &str = "
INSERT INTO run_history (run_id, org_id, conversation_id, status, input, output, error_code,
    error_detail, steps, step_count, prompt_tokens, completion_tokens, credits, last_event_id,
    queued_at, queued_position, ended_at, updated_at, state, version)
SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::jsonb[], $10::int[], $11::bigint[], $12::bigint[], $13::bigint[],
    $14::bigint[], $15::timestamptz[], $16::bigint[], $17::timestamptz[], $18::timestamptz[],
    $19::jsonb[], $20::bigint[])
ON CONFLICT (run_id) DO UPDATE
   SET status = EXCLUDED.status, output = EXCLUDED.output, error_code = EXCLUDED.error_code,
       error_detail = EXCLUDED.error_detail, steps = EXCLUDED.steps,
       step_count = EXCLUDED.step_count, prompt_tokens = EXCLUDED.prompt_tokens,
       completion_tokens = EXCLUDED.completion_tokens, credits = EXCLUDED.credits,
       last_event_id = EXCLUDED.last_event_id, ended_at = EXCLUDED.ended_at,
       updated_at = EXCLUDED.updated_at, state = EXCLUDED.state, version = EXCLUDED.version
 WHERE run_history.version < EXCLUDED.version";

#[async_trait]
impl BatchProjector for RunHistoryProjector {
    fn name(&self) -> &'static str {
        RUN_HISTORY
    }

    fn tables(&self) -> &'static [&'static str] {
        &["run_history"]
    }

    /// Only runs' events. Folding everything, every read of conversations being created (or
    /// of credit holds) cost the run history a transaction that wrote nothing but its
    /// checkpoint: about half of the projectors' transactions while conversations were
    /// created (BENCHMARKS.md, "Where a conversation's time goes on two cores").
    ///
    /// The price is the one the other views pay for the events they skip: on a node that does
    /// not hold the run history's lease, a wait for it to pass the log's head (`admit_run`
    /// under a concurrency limit, the quota report, run lists) learns of a move past other
    /// aggregates' events when it is saved, at most `SKIP_SAVE_EVERY` (50 ms) later. On the
    /// node running it, at once.
    fn folds(&self, event: &RecordedEvent) -> bool {
        event.aggregate_type == <Run as Aggregate>::TYPE
    }

    async fn fold(&self, connection: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let runs = by_aggregate(events, "run")?;
        if runs.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
        let mut rows = load(connection, &ids).await?;
        let mut changed = Vec::with_capacity(ids.len());
        for (id, events) in &runs {
            let row = rows.remove(id).unwrap_or_else(Row::new);
            if let Some(row) = fold(row, events)? {
                changed.push((*id, row));
            }
        }
        save(connection, changed).await
    }
}

impl Row {
    fn new() -> Self {
        Self {
            run: Run::default(),
            steps: Vec::new(),
            input: String::new(),
            output: None,
            error: None,
            queued: None,
            ended_at: None,
            updated_at: None,
            version: 0,
        }
    }
}

/// The row with the events it has not folded yet; `None` when there were none.
fn fold(mut row: Row, events: &[&RecordedEvent]) -> Result<Option<Row>, sqlx::Error> {
    let mut folded = false;
    let folded_up_to = row.version;
    for recorded in events.iter().filter(|event| event.sequence > folded_up_to) {
        let event: RunEvent = payload(recorded)?;
        let at = recorded_at(recorded)?;
        match &event {
            RunEvent::Queued { input, .. } => {
                row.input.clone_from(input);
                row.queued = Some((at, recorded.position));
            }
            RunEvent::Completed { output, .. } => row.output = Some(output.clone()),
            RunEvent::Failed { code, detail, .. } => row.error = Some((code.clone(), detail.clone())),
            _ => {}
        }
        if event.is_terminal() {
            row.ended_at = Some(at);
        }
        apply_to_steps(&mut row.steps, &event);
        row.run.apply(event);
        row.updated_at = Some(at);
        row.version = recorded.sequence;
        folded = true;
    }
    Ok(folded.then_some(row))
}

async fn load(connection: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, Row>, sqlx::Error> {
    let loaded: Vec<Loaded> = sqlx::query_as(LOAD).bind(ids).fetch_all(connection).await?;
    loaded
        .into_iter()
        .map(
            |(
                id,
                state,
                steps,
                input,
                output,
                error_code,
                error_detail,
                queued_at,
                queued_position,
                ended_at,
                version,
            )| {
                let decode = |error: serde_json::Error| sqlx::Error::Decode(Box::new(error));
                Ok((
                    id,
                    Row {
                        run: serde_json::from_value(state).map_err(decode)?,
                        steps: serde_json::from_value(steps).map_err(decode)?,
                        input,
                        output,
                        error: error_code.zip(error_detail),
                        queued: Some((queued_at, queued_position)),
                        ended_at,
                        updated_at: None,
                        version,
                    },
                ))
            },
        )
        .collect()
}

/// The rows' columns, one array per column, for [`SAVE`].
#[derive(Default)]
struct Columns {
    run_id: Vec<Uuid>,
    org_id: Vec<Uuid>,
    conversation_id: Vec<Uuid>,
    status: Vec<&'static str>,
    input: Vec<String>,
    output: Vec<Option<String>>,
    error_code: Vec<Option<String>>,
    error_detail: Vec<Option<String>>,
    steps: Vec<Value>,
    step_count: Vec<i32>,
    prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    credits: Vec<i64>,
    last_event_id: Vec<i64>,
    queued_at: Vec<DateTime<Utc>>,
    queued_position: Vec<i64>,
    ended_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<DateTime<Utc>>,
    state: Vec<Value>,
    version: Vec<i64>,
}

async fn save(connection: &mut PgConnection, rows: Vec<(Uuid, Row)>) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let encode = |error: serde_json::Error| sqlx::Error::Encode(Box::new(error));
    let mut columns = Columns::default();
    for (id, row) in rows {
        // A run's first event is its queuing: a row without it is a run this view cannot show.
        let (Some(org_id), Some((queued_at, queued_position)), Some(updated_at)) =
            (row.run.org_id(), row.queued, row.updated_at)
        else {
            continue;
        };
        let (prompt, completion, credits) = row.run.usage();
        columns.run_id.push(id);
        columns.org_id.push(org_id);
        columns.conversation_id.push(row.run.conversation_id());
        columns.status.push(row.run.status().as_str());
        columns.input.push(row.input);
        columns.output.push(row.output);
        let (code, detail) = row.error.unzip();
        columns.error_code.push(code);
        columns.error_detail.push(detail);
        columns
            .steps
            .push(serde_json::to_value(&row.steps).map_err(encode)?);
        columns
            .step_count
            .push(i32::try_from(row.run.steps()).unwrap_or(i32::MAX));
        columns.prompt_tokens.push(as_bigint(prompt));
        columns.completion_tokens.push(as_bigint(completion));
        columns.credits.push(as_bigint(credits));
        columns.last_event_id.push(as_bigint(row.run.last_id()));
        columns.queued_at.push(queued_at);
        columns.queued_position.push(queued_position);
        columns.ended_at.push(row.ended_at);
        columns.updated_at.push(updated_at);
        columns
            .state
            .push(serde_json::to_value(&row.run).map_err(encode)?);
        columns.version.push(row.version);
    }
    sqlx::query(SAVE)
        .bind(columns.run_id)
        .bind(columns.org_id)
        .bind(columns.conversation_id)
        .bind(columns.status)
        .bind(columns.input)
        .bind(columns.output)
        .bind(columns.error_code)
        .bind(columns.error_detail)
        .bind(columns.steps)
        .bind(columns.step_count)
        .bind(columns.prompt_tokens)
        .bind(columns.completion_tokens)
        .bind(columns.credits)
        .bind(columns.last_event_id)
        .bind(columns.queued_at)
        .bind(columns.queued_position)
        .bind(columns.ended_at)
        .bind(columns.updated_at)
        .bind(columns.state)
        .bind(columns.version)
        .execute(connection)
        .await?;
    Ok(())
}

/// A count as Postgres's `bigint` (no count reaches 2^63).
pub(crate) fn as_bigint(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::RunHistoryProjector;
    use crate::Projector;
    use crate::test_events::recorded as event;

    /// A read of the log holding only other aggregates' events (every conversation created,
    /// every credit hold) moves the run history's checkpoint without a transaction of its own.
    #[test]
    fn only_run_events_are_folded() {
        let projector = RunHistoryProjector;
        assert!(projector.folds(&event("run", "run.queued")));
        assert!(projector.folds(&event("run", "llm_call.completed")));
        assert!(!projector.folds(&event("conversation", "conversation.created")));
        assert!(!projector.folds(&event("credit_account", "credit_account.reserved")));
        assert!(!projector.folds(&event("user", "user.registered")));
    }
}
