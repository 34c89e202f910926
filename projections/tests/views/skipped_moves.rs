//! A runner with this process's progress board saves its moves past events its projector
//! ignores at most every 50 ms, and tells the process's readers at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use eventstore::log::FollowerProgress;
use eventstore::{Cursor, EventStore};
use projections::{IDENTITY, IdentityProjector};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{RawEvent, checkpoint, create_organization, last_cursor, runner_of, store};

/// Events the identity view ignores (a streaming run's text), one commit each, `pause` apart,
/// each announced to the process's followers as the store's own appends are; answers the last
/// one's cursor.
async fn ignored_events(store: &EventStore, pool: &PgPool, count: i64, pause: Duration) -> Cursor {
    let run_id = Uuid::now_v7().to_string();
    for sequence in 1..=count {
        RawEvent::streamed_text(&run_id, sequence).insert(pool).await;
        store.signal().notify();
        tokio::time::sleep(pause).await;
    }
    last_cursor(pool).await
}

/// How many progress announcements of the identity follower have arrived on `listener`.
async fn identity_announcements(listener: &mut PgListener) -> usize {
    let mut count = 0;
    while let Ok(Some(notification)) = tokio::time::timeout(Duration::from_millis(200), listener.try_recv())
        .await
        .map(Result::unwrap)
    {
        count += usize::from(notification.payload().ends_with(&format!(" {IDENTITY}")));
    }
    count
}

/// The identity projector's runner with a progress board whose waiters never re-read the
/// checkpoint on their own, past one folded event (saved, as before); and a listener that hears
/// what another node would: every saved move's announcement.
async fn runner_past_a_folded_event(
    store: &EventStore,
    pool: &PgPool,
    skip_save_every: Option<Duration>,
    shutdown: &CancellationToken,
) -> (FollowerProgress, PgListener) {
    let progress =
        FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), Duration::from_secs(600));
    let mut runner = runner_of(store, Arc::new(IdentityProjector)).with_progress(progress.clone());
    if let Some(every) = skip_save_every {
        runner = runner.with_skip_save_every(every);
    }
    tokio::spawn(runner.run(shutdown.clone()));
    create_organization(store, "Folded", Uuid::new_v4()).await;
    let folded = last_cursor(pool).await;
    assert!(
        progress
            .wait_for(IDENTITY, folded, Duration::from_secs(20))
            .await
            .unwrap()
    );
    saved_at(pool, folded).await;
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen("agentry_follower_progress").await.unwrap();
    (progress, listener)
}

/// Waits (5 s at most) until this process's board says the identity view is past `cursor`.
async fn board_reaches(progress: &FollowerProgress, cursor: Cursor) {
    let reached = progress
        .wait_for(IDENTITY, cursor, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(reached, "the progress board was not told");
}

/// Waits (5 s at most) until the saved checkpoint, what another node sees, reaches `cursor`.
async fn saved_at(pool: &PgPool, cursor: Cursor) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while checkpoint(pool).await < cursor {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint was not saved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn ignored_events_are_saved_past_in_few_moves_and_this_process_hears_of_them_at_once(pool: PgPool) {
    let store = store(&pool);
    let shutdown = CancellationToken::new();
    let (progress, mut listener) = runner_past_a_folded_event(&store, &pool, None, &shutdown).await;

    // 30 commits 10 ms apart: each wakes the runner, which reads it alone (its pace is 5 ms).
    let started = tokio::time::Instant::now();
    let ignored = ignored_events(&store, &pool, 30, Duration::from_millis(10)).await;

    // This process's readers are told without waiting for a save (or for the re-read).
    board_reaches(&progress, ignored).await;
    // Another node's: the checkpoint gets there too.
    saved_at(&pool, ignored).await;
    // Saved every 50 ms at most (and once more at the end), so fewer than one per commit.
    let most = usize::try_from(started.elapsed().as_millis() / 50).unwrap() + 3;
    let saves = identity_announcements(&mut listener).await;
    assert!(
        (1..=most).contains(&saves),
        "{saves} saved moves for 30 ignored commits (at most {most})"
    );
    shutdown.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_move_not_saved_yet_is_known_to_this_process_and_to_no_other(pool: PgPool) {
    let store = store(&pool);
    let shutdown = CancellationToken::new();
    let every = Some(Duration::from_secs(600));
    let (progress, mut listener) = runner_past_a_folded_event(&store, &pool, every, &shutdown).await;

    let ignored = ignored_events(&store, &pool, 10, Duration::from_millis(10)).await;

    // Told to this process's board (the waiter re-reads nothing itself, and nothing is
    // announced), while the saved checkpoint, all another node sees, stays behind.
    board_reaches(&progress, ignored).await;
    assert!(checkpoint(&pool).await < ignored, "the move was saved at once");
    assert_eq!(identity_announcements(&mut listener).await, 0);
    shutdown.cancel();
}
