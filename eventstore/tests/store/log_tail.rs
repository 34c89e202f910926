//! The followers of one process share their reads of the log (`LogTail`): what one read, the
//! others take from memory, exactly as a read of their own would have returned it, and an
//! empty answer still means nothing committed before the call is left unread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use eventstore::log::read_after_with;
use eventstore::{Cursor, EventStore, LogFollower, RecordedEvent};
use sqlx::PgPool;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::helpers::{context, renamed_event, store};

async fn append(store: &EventStore, aggregate_id: &str, from: usize, count: usize) {
    let events: Vec<_> = (from..from + count).map(renamed_event).collect();
    store
        .append(
            "organization",
            aggregate_id,
            from,
            &events,
            &context(Uuid::now_v7()),
        )
        .await
        .unwrap();
}

/// Follows from the start until `expected` events came, in batches of `batch`.
async fn follow(follower: &LogFollower, expected: usize) -> Vec<Uuid> {
    let mut cursor = Cursor::START;
    let mut ids = Vec::new();
    while ids.len() < expected {
        let batch = follower.read_after(cursor).await.unwrap();
        if let Some(last) = batch.last() {
            cursor = last.cursor();
        }
        if batch.is_empty() {
            // Caught up for now (or held by the gate: other tests share the cluster).
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        ids.extend(batch.iter().map(|event| event.id));
    }
    ids
}

/// Reads directly (no tail) until `count` events after `after` are past the log gate: other
/// tests' transactions on the same cluster may hold a fresh append back for a moment.
async fn wait_past_gate(store: &EventStore, after: Cursor, count: usize) -> Vec<RecordedEvent> {
    for _ in 0..500 {
        let events = read_after_with(store.pool(), store.upcasters(), after, 100_000)
            .await
            .unwrap();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{count} events did not pass the log gate within 5 s");
}

#[sqlx::test(migrations = "../migrations")]
async fn what_one_follower_read_the_others_take_without_reading_again(pool: PgPool) {
    let store = store(&pool);
    append(&store, "a", 0, 3).await;
    wait_past_gate(&store, Cursor::START, 3).await;
    let first = LogFollower::new(&store);
    let events = first.read_after(Cursor::START).await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(store.tail().reads(), 1);

    for batch_size in [1, 50] {
        let other = LogFollower::new(&store).with_batch_size(batch_size);
        let served = other.read_after(Cursor::START).await.unwrap();
        assert_eq!(served, events[..batch_size.min(3)].to_vec());
    }
    assert_eq!(
        store.tail().reads(),
        1,
        "the other followers took the events from memory"
    );

    let at_end = first.read_after(events[2].cursor()).await.unwrap();
    assert!(at_end.is_empty());
    assert_eq!(
        store.tail().reads(),
        2,
        "caught up is said only after a read of its own time"
    );
}

/// Followers that read shared events get the tail's own, not copies: a process with many
/// followers holds each event once, and one that skips most of what it reads copies nothing.
#[sqlx::test(migrations = "../migrations")]
async fn followers_reading_shared_events_get_the_same_events_not_copies(pool: PgPool) {
    let store = store(&pool);
    append(&store, "a", 0, 3).await;
    let expected = wait_past_gate(&store, Cursor::START, 3).await;
    let first = LogFollower::new(&store)
        .read_after_shared(Cursor::START)
        .await
        .unwrap();
    let second = LogFollower::new(&store)
        .read_after_shared(Cursor::START)
        .await
        .unwrap();
    let as_read: Vec<RecordedEvent> = first.iter().map(|event| RecordedEvent::clone(event)).collect();
    assert_eq!(as_read, expected, "the same events a read of the log returns");
    assert_eq!(store.tail().reads(), 1);
    assert!(
        first
            .iter()
            .zip(&second)
            .all(|(one, other)| Arc::ptr_eq(one, other)),
        "the second follower shares the first one's events"
    );
    let owned = LogFollower::new(&store).read_after(Cursor::START).await.unwrap();
    assert_eq!(
        owned, expected,
        "read_after still answers the caller's own events"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_another_process_committed_is_found_by_the_next_read_at_the_end(pool: PgPool) {
    let here = store(&pool);
    let elsewhere = store(&pool);
    append(&here, "a", 0, 2).await;
    wait_past_gate(&here, Cursor::START, 2).await;
    let follower = LogFollower::new(&here);
    let read = follower.read_after(Cursor::START).await.unwrap();
    let end = read[1].cursor();
    assert!(follower.read_after(end).await.unwrap().is_empty());

    // Another process's append does not wake this one, and the tail was just read: still, a
    // follower at the end reads again rather than answer from before the call.
    append(&elsewhere, "b", 0, 1).await;
    wait_past_gate(&here, end, 1).await;
    let after = follower.read_after(end).await.unwrap();

    assert_eq!(after.len(), 1);
    assert_eq!(after[0].aggregate_id, "b");
}

#[sqlx::test(migrations = "../migrations")]
async fn followers_racing_appends_each_get_the_log_in_order_exactly_once(pool: PgPool) {
    let store = store(&pool);
    let appends = 40;
    let per_append = 3;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for index in 0..appends {
                append(
                    &store,
                    &format!("agg-{}", index % 4),
                    (index / 4) * per_append,
                    per_append,
                )
                .await;
            }
        })
    };
    let followers: Vec<_> = [1, 2, 5, 7, 50, 1000]
        .into_iter()
        .map(|batch_size| {
            let follower = LogFollower::new(&store).with_batch_size(batch_size);
            tokio::spawn(async move {
                let expected = appends * per_append;
                tokio::time::timeout(std::time::Duration::from_secs(60), follow(&follower, expected))
                    .await
                    .expect("a follower did not get every event within 60 s")
            })
        })
        .collect();
    writer.await.unwrap();

    let expected: Vec<Uuid> = wait_past_gate(&store, Cursor::START, appends * per_append)
        .await
        .iter()
        .map(|event| event.id)
        .collect();
    assert_eq!(expected.len(), appends * per_append);
    for follower in followers {
        assert_eq!(
            follower.await.unwrap(),
            expected,
            "a follower's order differs from the log's"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn followers_at_the_end_at_the_same_moment_share_their_reads(pool: PgPool) {
    let store = store(&pool);
    append(&store, "a", 0, 1).await;
    wait_past_gate(&store, Cursor::START, 1).await;
    let start = LogFollower::new(&store).read_after(Cursor::START).await.unwrap();
    let end = start[0].cursor();
    append(&store, "a", 1, 1).await;
    wait_past_gate(&store, end, 1).await;
    let reads_before = store.tail().reads();

    let followers = 16;
    let barrier = Arc::new(Barrier::new(followers));
    let tasks: Vec<_> = (0..followers)
        .map(|_| {
            let follower = LogFollower::new(&store);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                follower.read_after(end).await.unwrap()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        let events = task.await.unwrap();
        assert_eq!(events.len(), 1, "every follower gets the new event");
        seen.insert(events[0].id);
    }

    assert_eq!(seen.len(), 1);
    let reads = store.tail().reads() - reads_before;
    assert!(
        reads <= 3,
        "{reads} reads for {followers} followers asking at once"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_follower_handed_a_cut_command_reads_on_without_pushing_the_others_out(pool: PgPool) {
    let store = store(&pool);
    // A full read (1,000 events) ends inside the second command: the stretch leaves that
    // command out, while the relay-like follower that asked is handed all 1,000.
    append(&store, "first", 0, 995).await;
    append(&store, "second", 0, 10).await;
    wait_past_gate(&store, Cursor::START, 1005).await;
    let relay_like = LogFollower::new(&store);
    let handed = relay_like.read_after(Cursor::START).await.unwrap();
    assert_eq!(handed.len(), 1000);

    let rest = relay_like.read_after(handed[999].cursor()).await.unwrap();
    assert_eq!(rest.len(), 5, "the rest of the cut command");
    let reads = store.tail().reads();
    let projector_like = LogFollower::new(&store).with_batch_size(50);
    let from_start = projector_like.read_after(Cursor::START).await.unwrap();

    assert_eq!(from_start, handed[..50].to_vec());
    assert_eq!(
        store.tail().reads(),
        reads,
        "a follower at the start is still served from memory: the stretch was not moved past it"
    );
}
