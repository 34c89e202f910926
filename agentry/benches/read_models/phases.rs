//! Where a rebuild's time goes (`BENCH_PHASES=1`): the rebuild's loop (`rebuild/mod.rs`,
//! `Copy::step`) replayed with a clock around each phase, into copies of the conversation
//! view's tables with only their primary keys, as the rebuild fills them:
//! - **read**: `read_after_with` (the gated query, rows decoded, payloads parsed into JSON
//!   values, upcast), split into the query with payload and metadata left as text and the rest;
//! - **fold**: `ConversationsProjector::apply_batch` (its loads, the fold in memory, its writes);
//! - **commit**.

use std::time::{Duration, Instant};

use eventstore::log::read_after_with;
use eventstore::{Cursor, EventStore};
use projections::{ConversationsProjector, Projector};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The rebuild's read size (`REBUILD_BATCH`).
const BATCH: i64 = 5_000;

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

/// Folds the whole log as the rebuild does, timing each phase; prints the split.
pub async fn profile(store: &EventStore) {
    let options: PgConnectOptions = (*store.pool().connect_options()).clone();
    let mut connection = options.connect().await.unwrap();
    sqlx::raw_sql(SCHEMA).execute(&mut connection).await.unwrap();
    let (mut query_text, mut read, mut fold, mut commit) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut cursor, mut events) = (Cursor::START, 0u64);
    let started = Instant::now();
    loop {
        let clock = Instant::now();
        let _rows: Vec<TextRow> = sqlx::query_as(READ_AS_TEXT)
            .bind(cursor.transaction_id.to_string())
            .bind(cursor.position)
            .bind(BATCH)
            .fetch_all(store.pool())
            .await
            .unwrap();
        query_text += clock.elapsed();
        let clock = Instant::now();
        let batch = read_after_with(store.pool(), store.upcasters(), cursor, BATCH)
            .await
            .unwrap();
        read += clock.elapsed();
        let Some(last) = batch.last() else { break };
        cursor = last.cursor();
        events += batch.len() as u64;
        let clock = Instant::now();
        let mut transaction = connection.begin().await.unwrap();
        ConversationsProjector
            .apply_batch(&mut transaction, &batch)
            .await
            .unwrap();
        fold += clock.elapsed();
        let clock = Instant::now();
        transaction.commit().await.unwrap();
        commit += clock.elapsed();
    }
    let total = started.elapsed() - query_text;
    let share = |phase: Duration| 100.0 * phase.as_secs_f64() / total.as_secs_f64();
    let rate = events as f64 / total.as_secs_f64();
    println!("\nrebuild phases over {events} events ({:.1} s, {rate:.0} events/s, reads of {BATCH}):", total.as_secs_f64());
    println!("| phase | seconds | share |");
    println!("|---|---|---|");
    println!("| read: `read_after_with` (query, decode, JSON parse, upcast) | {:.2} | {:.0}% |", read.as_secs_f64(), share(read));
    println!(
        "| (the same query with payload and metadata as text, timed apart: {:.2} s) | | |",
        query_text.as_secs_f64()
    );
    println!("| fold: `apply_batch` | {:.2} | {:.0}% |", fold.as_secs_f64(), share(fold));
    println!("| commit | {:.2} | {:.0}% |", commit.as_secs_f64(), share(commit));
    sqlx::raw_sql("DROP SCHEMA bench_phases CASCADE")
        .execute(&mut connection)
        .await
        .unwrap();
}
