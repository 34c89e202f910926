//! A runner with this process's progress board saves its moves past events its projector
//! ignores at most every 50 ms, and tells the process's readers at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use eventstore::EventStore;
use eventstore::log::FollowerProgress;
use projections::{IDENTITY, IdentityProjector};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{RawEvent, checkpoint, create_organization, last_cursor, runner_of, store};

/// Events the identity view ignores (a streaming run's text), one commit each, `pause` apart,
/// each announced to the process's followers as the store's own appends are.
async fn ignored_events(store: &EventStore, pool: &PgPool, count: i64, pause: Duration) {
    let run_id = Uuid::now_v7().to_string();
    for sequence in 1..=count {
        RawEvent::streamed_text(&run_id, sequence).insert(pool).await;
        store.signal().notify();
        tokio::time::sleep(pause).await;
    }
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

#[sqlx::test(migrations = "../migrations")]
async fn ignored_events_are_saved_past_in_few_moves_and_this_process_hears_of_them_at_once(pool: PgPool) {
    let store = store(&pool);
    let shutdown = CancellationToken::new();
    // Waiters that never re-read the checkpoint on their own.
    let progress =
        FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), Duration::from_secs(600));
    let runner = runner_of(&store, Arc::new(IdentityProjector)).with_progress(progress.clone());
    tokio::spawn(runner.run(shutdown.clone()));
    create_organization(&store, "Folded", Uuid::new_v4()).await;
    let folded = last_cursor(&pool).await;
    assert!(
        progress
            .wait_for(IDENTITY, folded, Duration::from_secs(20))
            .await
            .unwrap()
    );

    // What another node hears: every saved move is announced.
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("agentry_follower_progress").await.unwrap();
    // 30 commits 10 ms apart: each wakes the runner, which reads it alone (its pace is 5 ms).
    let started = tokio::time::Instant::now();
    ignored_events(&store, &pool, 30, Duration::from_millis(10)).await;
    let ignored = last_cursor(&pool).await;

    // This process's readers are told without waiting for a save (or for the re-read).
    assert!(
        progress
            .wait_for(IDENTITY, ignored, Duration::from_secs(5))
            .await
            .unwrap()
    );
    // Another node's: the checkpoint gets there too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while checkpoint(&pool).await < ignored {
        assert!(tokio::time::Instant::now() < deadline, "the move was never saved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    let progress =
        FollowerProgress::start_with_recheck(pool.clone(), shutdown.clone(), Duration::from_secs(600));
    let runner = runner_of(&store, Arc::new(IdentityProjector))
        .with_progress(progress.clone())
        .with_skip_save_every(Duration::from_secs(600));
    tokio::spawn(runner.run(shutdown.clone()));
    // The allowed path first: a folded event is saved and announced as before.
    create_organization(&store, "Folded", Uuid::new_v4()).await;
    let folded = last_cursor(&pool).await;
    assert!(
        progress
            .wait_for(IDENTITY, folded, Duration::from_secs(20))
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while checkpoint(&pool).await < folded {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the folded batch was not saved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("agentry_follower_progress").await.unwrap();
    ignored_events(&store, &pool, 10, Duration::from_millis(10)).await;
    let ignored = last_cursor(&pool).await;

    // Told to this process's board (the waiter re-reads nothing itself, and nothing is
    // announced), while the saved checkpoint, all another node sees, stays behind.
    assert!(
        progress
            .wait_for(IDENTITY, ignored, Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(checkpoint(&pool).await < ignored, "the move was saved at once");
    assert_eq!(identity_announcements(&mut listener).await, 0);
    shutdown.cancel();
}
