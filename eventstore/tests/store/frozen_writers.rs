//! A writer's backend frozen under its statement (SIGSTOP here; a paused VM, or a host gone
//! without a reset, which TCP alone may never notice) holds that writer, and every append queued
//! behind it, for a bounded time only: past [`APPEND_STATEMENT_DEADLINE`] the writer closes the
//! connection and answers each of the statement's units that its outcome is unknown (the server
//! may still commit it once it runs again), then goes on with the next appends.
//!
//! Each test parks the statement on a lock another transaction holds, freezes the backend that
//! waits, and then lets the lock go: only the freeze keeps the statement from finishing. A
//! statement merely waiting is not given up on: its server ends it first, nothing committed,
//! and it is sent again.
//!
//! While a backend is frozen, Postgres's `CREATE DATABASE` and `DROP DATABASE` (every
//! `sqlx::test`'s setup and teardown, in any test running beside these) wait for it to absorb
//! their barrier: the freezes here last one deadline (5 s) at most.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventstore::store::APPEND_STATEMENT_DEADLINE;
use eventstore::{EventStore, StoreError};
use sqlx::PgPool;
use testkit::FrozenBackends;
use uuid::Uuid;

use crate::group_commit::{
    append_new, busy_store, event_count, hold_first_event, settle, until_waiting_on_locks,
};
use crate::helpers::{context, store};

/// How much later than the deadline a frozen statement's caller may hear of it.
const SLACK: Duration = Duration::from_secs(3);

/// The writer's backend that waits on a lock in this test's database, frozen.
async fn freeze_waiting_writer(pool: &PgPool) -> FrozenBackends {
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'agentry-appends'
            AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    FrozenBackends::freeze(vec![pid])
}

/// After a frozen statement was given up on: the store's only writer writes the next append at
/// once, and the frozen backend, woken, finds its connection closed and ends (returned to the
/// pool, it would have lived on).
async fn writer_goes_on_and_frozen_session_ends(store: &EventStore, pool: &PgPool, frozen: FrozenBackends) {
    let next = append_new(store, "next", context(Uuid::now_v7()));
    tokio::time::timeout(SLACK, next)
        .await
        .expect("the only writer is free again")
        .unwrap()
        .expect("and writes the next append");
    let pid = frozen.pids()[0];
    drop(frozen);
    for _ in 0..500 {
        let alive: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(pid)
            .fetch_one(pool)
            .await
            .unwrap();
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backend {pid} lived on after it woke: its connection was kept");
}

fn assert_outcome_unknown(outcome: Result<impl std::fmt::Debug, StoreError>, what: &str) {
    match outcome {
        Err(StoreError::OutcomeUnknown(_)) => {}
        other => panic!("{what}: expected an unknown outcome, got {other:?}"),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_lone_append_whose_backend_froze_gives_up_in_time_and_the_writer_goes_on(pool: PgPool) {
    let (store, held, blocked) = busy_store(&pool).await;
    // The allowed path: once the lock goes, the waiting append is written.
    held.rollback().await.unwrap();
    blocked.await.unwrap().expect("written once the lock went");

    let held = hold_first_event(&pool, "frozen").await;
    let started = Instant::now();
    let stuck = append_new(&store, "frozen", context(Uuid::now_v7()));
    until_waiting_on_locks(&pool, 1).await;
    let frozen = freeze_waiting_writer(&pool).await;
    held.rollback().await.unwrap();

    let outcome = tokio::time::timeout(APPEND_STATEMENT_DEADLINE + SLACK, stuck)
        .await
        .expect("the append gives up on its frozen backend")
        .unwrap();
    assert_outcome_unknown(outcome, "the frozen append");
    assert!(
        started.elapsed() >= APPEND_STATEMENT_DEADLINE,
        "not before the deadline"
    );

    writer_goes_on_and_frozen_session_ends(&store, &pool, frozen).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_group_whose_backend_froze_answers_each_unit_that_its_outcome_is_unknown(pool: PgPool) {
    let (store, held, blocked) = busy_store(&pool).await;
    let held_group = hold_first_event(&pool, "frozen").await;
    let queued = [
        append_new(&store, "frozen", context(Uuid::now_v7())),
        append_new(&store, "beside-1", context(Uuid::now_v7())),
        append_new(&store, "beside-2", context(Uuid::now_v7())),
    ];
    settle().await;
    // The writer finishes the blocked append and takes the three queued as one group, which
    // waits on the lock `held_group` holds.
    held.rollback().await.unwrap();
    blocked.await.unwrap().expect("written once the lock went");
    until_waiting_on_locks(&pool, 1).await;
    let frozen = freeze_waiting_writer(&pool).await;
    held_group.rollback().await.unwrap();

    for (n, unit) in queued.into_iter().enumerate() {
        let outcome = tokio::time::timeout(APPEND_STATEMENT_DEADLINE + SLACK, unit)
            .await
            .expect("the group gives up on its frozen backend")
            .unwrap();
        assert_outcome_unknown(outcome, &format!("unit {n} of the frozen group"));
    }

    writer_goes_on_and_frozen_session_ends(&store, &pool, frozen).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_lone_append_waiting_on_a_lock_past_the_deadline_is_written_once_it_goes(pool: PgPool) {
    let store = store(&pool).with_append_writers(1);
    let held = hold_first_event(&pool, "waiting").await;
    let waiting = append_new(&store, "waiting", context(Uuid::now_v7()));
    until_waiting_on_locks(&pool, 1).await;
    // Longer than the writer waits for an answer: the server has ended the statement by then
    // (its own timeout comes first), and it waits again on the shared pool.
    tokio::time::sleep(APPEND_STATEMENT_DEADLINE + Duration::from_secs(1)).await;
    // It waits there in its caller's task, not in the writer's: the only writer is free.
    let beside = append_new(&store, "beside", context(Uuid::now_v7()));
    tokio::time::timeout(SLACK, beside)
        .await
        .expect("the writer does not wait for the append sent again")
        .unwrap()
        .expect("and writes the next append");
    held.rollback().await.unwrap();

    tokio::time::timeout(SLACK, waiting)
        .await
        .expect("answered once the lock went")
        .unwrap()
        .expect("written, not answered that its outcome is unknown");
    assert_eq!(event_count(&pool, "waiting").await, 1, "written once");
    let left_waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left_waiting, 0, "no statement left behind waiting to commit");
}
