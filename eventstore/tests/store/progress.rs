//! Read-your-writes waiters wake from the followers' own announcements (one `NOTIFY` per batch,
//! delivered at commit to every process), not from polling the checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventstore::Cursor;
use eventstore::log::{FollowerProgress, announce_progress, save_checkpoint};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

/// So long that only a notification (or the listener's own re-read) can wake a waiter in time.
const NO_RECHECK: Duration = Duration::from_secs(600);

fn at(transaction_id: u64, position: i64) -> Cursor {
    Cursor {
        transaction_id,
        position,
    }
}

/// What a projector runner does at the end of a batch, from its own connection (another node).
async fn commit_batch(pool: &PgPool, name: &str, from: Cursor, to: Cursor) {
    let mut transaction = pool.begin().await.unwrap();
    assert!(save_checkpoint(&mut *transaction, name, from, to).await.unwrap());
    announce_progress(&mut *transaction, name, to).await.unwrap();
    transaction.commit().await.unwrap();
}

/// A second pool on the same database: the runner of another process.
async fn other_node(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

fn spawn_wait(
    progress: &FollowerProgress,
    name: &'static str,
    cursor: Cursor,
    timeout: Duration,
) -> tokio::task::JoinHandle<(bool, Duration)> {
    let progress = progress.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let reached = progress.wait_for(name, cursor, timeout).await.unwrap();
        (reached, started.elapsed())
    })
}

#[sqlx::test(migrations = "../migrations")]
async fn a_waiter_wakes_when_another_node_commits_the_batch_that_passes_its_write(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let progress = FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), NO_RECHECK);
    let runner = other_node(&pool).await;
    let write = at(100, 7);
    let waiting = spawn_wait(&progress, "identity", write, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A batch that stops short of the write, and one for another follower, wake nobody.
    commit_batch(&runner, "identity", Cursor::START, at(50, 3)).await;
    commit_batch(&runner, "relay", Cursor::START, at(200, 9)).await;
    // A batch whose transaction rolls back announces nothing.
    let mut rolled_back = runner.begin().await.unwrap();
    save_checkpoint(&mut *rolled_back, "identity", at(50, 3), write)
        .await
        .unwrap();
    announce_progress(&mut *rolled_back, "identity", write)
        .await
        .unwrap();
    rolled_back.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "woken before the view held the write");

    commit_batch(&runner, "identity", at(50, 3), write).await;
    let (reached, waited) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the notification woke the waiter")
        .unwrap();
    assert!(
        reached,
        "the wait reports the write as visible (after {waited:?})"
    );
    shutdown.cancel();
    runner.close().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_wait_on_a_stalled_follower_gives_up_at_its_timeout_and_says_so(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let progress = FollowerProgress::start(pool.clone(), shutdown.clone());
    let timeout = Duration::from_millis(1500);

    let (reached, waited) = spawn_wait(&progress, "identity", at(100, 7), timeout)
        .await
        .unwrap();

    assert!(!reached, "a follower that never moved did not reach the write");
    // Not before the timeout; after it by no more than a loaded machine's slack.
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(5),
        "{waited:?}"
    );
    shutdown.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_waiter_already_passed_returns_at_once_from_the_saved_checkpoint(pool: PgPool) {
    commit_batch(&pool, "identity", Cursor::START, at(100, 7)).await;
    let shutdown = CancellationToken::new();
    let progress = FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), NO_RECHECK);

    let reached = progress
        .wait_for("identity", at(90, 5), Duration::from_secs(30))
        .await
        .unwrap();

    assert!(reached);
    shutdown.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn waiters_still_wake_after_the_listening_connection_is_killed(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let progress = FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), NO_RECHECK);
    let runner = other_node(&pool).await;
    let listening = "SELECT pid FROM pg_stat_activity
                      WHERE datname = current_database() AND application_name = 'agentry-progress'
                        AND query LIKE 'LISTEN%'";
    let started = Instant::now();
    let pid: i32 = loop {
        if let Some(pid) = sqlx::query_scalar(listening).fetch_optional(&pool).await.unwrap() {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the listener never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let write = at(100, 7);
    let waiting = spawn_wait(&progress, "identity", write, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(killed);
    // Announced while the listener may be down: lost, unless it re-reads when it is back.
    commit_batch(&runner, "identity", Cursor::START, write).await;

    let (reached, waited) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiter woke after the listener reconnected")
        .unwrap();
    assert!(reached, "after {waited:?}");
    shutdown.cancel();
    runner.close().await;
}
