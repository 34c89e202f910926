//! Where a rebuild's time goes (`BENCH_PHASES=1`): the rebuild's loop (`rebuild/mod.rs`,
//! `Copy::step`) replayed with a clock around each phase, into copies of the conversation
//! view's tables with only their primary keys, as the rebuild fills them:
//! - **read**: `read_after_with` (the gated query, rows decoded, payloads parsed into JSON
//!   values, upcast), split into the query with payload and metadata left as text and the rest;
//! - **fold**: `ConversationsProjector::apply_batch` (its loads, the fold in memory, its writes);
//! - **commit**.

use std::time::{Duration, Instant};

use eventstore::log::read_after_with;
use eventstore::{Cursor, EventStore, RecordedEvent};
use projections::{ConversationsProjector, Projector};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The rebuild's read size (`REBUILD_BATCH`), unless `BENCH_PHASES_BATCH` says otherwise.
fn batch_size() -> i64 {
    std::env::var("BENCH_PHASES_BATCH")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5_000)
}

/// The follower's query, with the payload and metadata the view does not read left out by the
/// server (`BENCH_PHASES_SKIP=1`): what skipping them would save.
const READ_NEEDED: &str = "
SELECT event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version,
       CASE WHEN aggregate_type = 'conversation' OR event_type = ANY($4) THEN payload ELSE 'null'::json END,
       CASE WHEN aggregate_type = 'conversation' THEN metadata ELSE '{}'::json END
  FROM events
 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (transaction_id, position) > ($1::text::xid8, $2)
 ORDER BY events.transaction_id, events.position
 LIMIT $3";

type FullRow = (
    uuid::Uuid,
    i64,
    String,
    Option<uuid::Uuid>,
    String,
    String,
    i64,
    String,
    String,
    serde_json::Value,
    serde_json::Value,
);

/// [`READ_NEEDED`] as events (upcast as the follower does).
async fn read_needed(store: &EventStore, cursor: Cursor, limit: i64) -> Vec<RecordedEvent> {
    let types = vec![
        "run.queued",
        "message.completed",
        "tool_call.requested",
        "tool_call.completed",
        "tool_call.failed",
        "tool_call.denied",
    ];
    let rows: Vec<FullRow> = sqlx::query_as(READ_NEEDED)
        .bind(cursor.transaction_id.to_string())
        .bind(cursor.position)
        .bind(limit)
        .bind(types)
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            let event = RecordedEvent {
                id: row.0,
                position: row.1,
                transaction_id: row.2.parse().unwrap(),
                org_id: row.3,
                aggregate_type: row.4,
                aggregate_id: row.5,
                sequence: row.6,
                event_type: row.7,
                version: row.8,
                data: row.9,
                metadata: row.10,
            };
            store.upcasters().upcast_recorded(event)
        })
        .collect()
}

const SCHEMA: &str = "
DROP SCHEMA IF EXISTS bench_phases CASCADE;
CREATE SCHEMA bench_phases;
CREATE TABLE bench_phases.conversation_views (LIKE public.conversation_views INCLUDING DEFAULTS, PRIMARY KEY (conversation_id));
CREATE TABLE bench_phases.conversation_view_runs (LIKE public.conversation_view_runs INCLUDING DEFAULTS, PRIMARY KEY (run_id));
CREATE TABLE bench_phases.conversation_messages (LIKE public.conversation_messages INCLUDING DEFAULTS, PRIMARY KEY (run_id, ordinal));
SET search_path = bench_phases, public;";

/// The follower's query with payload and metadata as text: the read without JSON parsing.
const READ_AS_TEXT: &str = "
SELECT event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload::text, metadata::text
  FROM events
 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (transaction_id, position) > ($1::text::xid8, $2)
 ORDER BY events.transaction_id, events.position
 LIMIT $3";

type TextRow = (
    uuid::Uuid,
    i64,
    String,
    Option<uuid::Uuid>,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
);

/// Where the time went.
#[derive(Default)]
struct Split {
    query_text: Duration,
    read: Duration,
    conversations: Duration,
    runs: Duration,
    commit: Duration,
    drop: Duration,
}

/// Folds the whole log as the rebuild does, timing each phase; prints the split.
pub async fn profile(store: &EventStore) {
    let options: PgConnectOptions = (*store.pool().connect_options()).clone();
    let mut connection = options.connect().await.unwrap();
    sqlx::raw_sql(SCHEMA).execute(&mut connection).await.unwrap();
    let mut split = Split::default();
    let (mut cursor, mut events) = (Cursor::START, 0u64);
    let batch_size = batch_size();
    let skip = std::env::var("BENCH_PHASES_SKIP").is_ok_and(|value| value == "1");
    let started = Instant::now();
    loop {
        let clock = Instant::now();
        let rows: Vec<TextRow> = sqlx::query_as(READ_AS_TEXT)
            .bind(cursor.transaction_id.to_string())
            .bind(cursor.position)
            .bind(batch_size)
            .fetch_all(store.pool())
            .await
            .unwrap();
        drop(rows);
        split.query_text += clock.elapsed();
        let clock = Instant::now();
        let batch = if skip {
            read_needed(store, cursor, batch_size).await
        } else {
            read_after_with(store.pool(), store.upcasters(), cursor, batch_size)
                .await
                .unwrap()
        };
        split.read += clock.elapsed();
        let Some(last) = batch.last() else { break };
        cursor = last.cursor();
        events += batch.len() as u64;
        // The projector folds conversation events and run events apart (`fold_conversations`,
        // `fold_runs`), so a batch split by aggregate type folds the same.
        let (conversations, runs): (Vec<RecordedEvent>, Vec<RecordedEvent>) = batch
            .iter()
            .filter(|event| matches!(event.aggregate_type.as_str(), "conversation" | "run"))
            .cloned()
            .partition(|event| event.aggregate_type == "conversation");
        let mut transaction = connection.begin().await.unwrap();
        for (events, phase) in [
            (&conversations, &mut split.conversations),
            (&runs, &mut split.runs),
        ] {
            let clock = Instant::now();
            ConversationsProjector
                .apply_batch(&mut transaction, events)
                .await
                .unwrap();
            *phase += clock.elapsed();
        }
        let clock = Instant::now();
        transaction.commit().await.unwrap();
        split.commit += clock.elapsed();
        let clock = Instant::now();
        drop((batch, conversations, runs));
        split.drop += clock.elapsed();
    }
    let total = started.elapsed() - split.query_text;
    report(&split, events, total, batch_size, skip);
    sqlx::raw_sql("DROP SCHEMA bench_phases CASCADE")
        .execute(&mut connection)
        .await
        .unwrap();
}

fn report(split: &Split, events: u64, total: Duration, batch_size: i64, skip: bool) {
    let rate = events as f64 / total.as_secs_f64();
    println!(
        "\nrebuild phases over {events} events ({:.1} s, {rate:.0} events/s, reads of {batch_size}{}):",
        total.as_secs_f64(),
        if skip {
            ", payloads the view does not read left out"
        } else {
            ""
        }
    );
    println!("| phase | seconds | share |");
    println!("|---|---|---|");
    let row = |name: &str, phase: Duration| {
        let share = 100.0 * phase.as_secs_f64() / total.as_secs_f64();
        println!("| {name} | {:.2} | {share:.0}% |", phase.as_secs_f64());
    };
    row(
        "read: `read_after_with` (query, rows, JSON parse, upcast)",
        split.read,
    );
    row(
        "fold of conversation events (`fold_conversations`)",
        split.conversations,
    );
    row("fold of run events (`fold_runs`: transcripts)", split.runs);
    row("commit", split.commit);
    row("dropping the batch", split.drop);
    println!(
        "\nthe read's query alone, payload and metadata as text (not parsed), timed apart: {:.2} s",
        split.query_text.as_secs_f64()
    );
}
