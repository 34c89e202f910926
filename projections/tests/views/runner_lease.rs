//! One runner per projector across processes, in batches short enough never to hold the log
//! gate for long.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use eventstore::log::FollowerProgress;
use projections::{IDENTITY, IdentityProjector, Projector};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{
    RawEvent, catch_up, checkpoint, create_organization, last_cursor, runner, runner_of, store,
};

/// The identity projector, counting every event it is asked to apply (committed or rolled
/// back): work a second runner wastes shows as extra applications.
struct Counting(Arc<AtomicUsize>);

#[async_trait]
impl Projector for Counting {
    fn name(&self) -> &'static str {
        IDENTITY
    }

    async fn clear(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        IdentityProjector.clear(connection).await
    }

    fn folds(&self, event: &RecordedEvent) -> bool {
        IdentityProjector.folds(event)
    }

    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        IdentityProjector.apply(connection, event).await
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn events_a_projector_ignores_move_its_checkpoint_and_wake_its_waiters_without_being_applied(
    pool: PgPool,
) {
    let store = store(&pool);
    let applied = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    // Waiters that never re-read the checkpoint on their own: only announcements wake them.
    let progress =
        FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), Duration::from_secs(600));
    tokio::spawn(runner_of(&store, Arc::new(Counting(Arc::clone(&applied)))).run(shutdown.clone()));

    // An event the identity view folds: applied, and announced.
    create_organization(&store, "Folded", Uuid::new_v4()).await;
    let folded = last_cursor(&pool).await;
    let waited = progress.wait_for(IDENTITY, folded, Duration::from_secs(20));
    assert!(waited.await.unwrap(), "the folded event was not announced");
    let applied_before = applied.load(Ordering::Relaxed);
    assert!(applied_before >= 1, "the organization was not applied");

    // A streaming run's text, which the identity view ignores: passed, announced, not applied.
    let run_id = Uuid::now_v7().to_string();
    for sequence in 1..=5 {
        RawEvent::streamed_text(&run_id, sequence).insert(&pool).await;
    }
    let ignored = last_cursor(&pool).await;
    let waited = progress.wait_for(IDENTITY, ignored, Duration::from_secs(20));
    assert!(
        waited.await.unwrap(),
        "the checkpoint did not pass the ignored events, or no one was told"
    );
    assert_eq!(checkpoint(&pool).await, ignored);
    assert_eq!(
        applied.load(Ordering::Relaxed),
        applied_before,
        "events the projector ignores were handed to it"
    );
    shutdown.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn two_running_runners_of_one_projector_apply_each_event_once_between_them(pool: PgPool) {
    let store = store(&pool);
    let (first_count, second_count) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let shutdown = CancellationToken::new();
    tokio::spawn(runner_of(&store, Arc::new(Counting(Arc::clone(&first_count)))).run(shutdown.clone()));
    tokio::spawn(runner_of(&store, Arc::new(Counting(Arc::clone(&second_count)))).run(shutdown.clone()));

    for index in 0..150 {
        create_organization(&store, &format!("Org {index}"), Uuid::new_v4()).await;
    }
    let target = last_cursor(&pool).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while checkpoint(&pool).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runners did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();

    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (first, second) = (
        first_count.load(Ordering::Relaxed),
        second_count.load(Ordering::Relaxed),
    );
    assert_eq!(
        first + second,
        usize::try_from(events).unwrap(),
        "each event applied once across both runners (first {first}, second {second})"
    );
}

/// The longest any other writing transaction of this database has been open, sampled every
/// millisecond until `done`.
async fn longest_writer(pool: PgPool, done: Arc<AtomicBool>) -> f64 {
    let mut connection = pool.acquire().await.unwrap();
    let mut longest: f64 = 0.0;
    while !done.load(Ordering::Relaxed) {
        let age: f64 = sqlx::query_scalar(
            "SELECT COALESCE(max(EXTRACT(EPOCH FROM clock_timestamp() - xact_start))::float8, 0)
               FROM pg_stat_activity
              WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *connection)
        .await
        .unwrap();
        longest = longest.max(age);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    longest
}

/// A projector's transaction holds the gate for every follower from its first write to its
/// commit: catching up on 600 events must never keep one open for long. The bound (100 ms) is
/// far above the runner's 5 ms budget, for a loaded machine, and far below one 500-event batch.
#[sqlx::test(migrations = "../migrations")]
async fn catching_up_never_holds_the_log_gate_for_long(pool: PgPool) {
    let store = store(&pool);
    for index in 0..300 {
        create_organization(&store, &format!("Org {index}"), Uuid::new_v4()).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(longest_writer(pool.clone(), Arc::clone(&done)));

    catch_up(&runner(&store), &pool).await;
    done.store(true, Ordering::Relaxed);
    let longest = sampler.await.unwrap();

    assert!(
        longest < 0.1,
        "a projector transaction held the gate for {:.0} ms",
        longest * 1000.0
    );
}
