//! The live path and the store merged by id: what a reader gets, whenever it joins and whatever
//! the live path loses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::run::MAX_UNRECORDED_IDS;
use sqlx::PgPool;
use streams::{FeedLimits, OpenError, RunStreams, StreamItem};
use uuid::Uuid;

use crate::support::{HandRun, frames, ids, local_streams, next, quiet, store, texts};

#[sqlx::test(migrations = "../migrations")]
async fn a_reader_gets_chunks_live_before_they_are_recorded_and_each_once(pool: PgPool) {
    let store = store(&pool);
    let streams = local_streams(&store);
    let mut run = HandRun::streaming(&store, &streams).await;
    let mut reader = streams.open(run.org_id, run.run_id, None).await.unwrap();
    assert_eq!(ids(&frames(&mut reader, 3).await), [1, 2, 3]);

    run.send_live(0, "Hel");
    run.send_live(1, "lo");
    let live = frames(&mut reader, 2).await;
    assert_eq!((ids(&live), texts(&live)), (vec![4, 5], "Hello".to_owned()));

    // The batch lands in the store: nothing is sent again.
    run.record_chunks(&["Hel", "lo"]).await;
    quiet(&mut reader).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reader_joining_mid_message_gets_the_text_so_far_that_is_not_recorded_yet(pool: PgPool) {
    let store = store(&pool);
    let streams = local_streams(&store);
    let mut run = HandRun::streaming(&store, &streams).await;
    let mut first = streams.open(run.org_id, run.run_id, None).await.unwrap();
    frames(&mut first, 3).await;
    run.record_chunks(&["One "]).await;
    run.send_live(0, "two ");
    run.send_live(1, "three");
    assert_eq!(texts(&frames(&mut first, 3).await), "One two three");

    // Joins from the start, and resumes after the first chunk: both get the unrecorded text.
    let mut late = streams.open(run.org_id, run.run_id, None).await.unwrap();
    let seen = frames(&mut late, 6).await;
    assert_eq!(
        (ids(&seen), texts(&seen)),
        (vec![1, 2, 3, 4, 5, 6], "One two three".to_owned())
    );
    let mut resumed = streams.open(run.org_id, run.run_id, Some(4)).await.unwrap();
    let seen = frames(&mut resumed, 2).await;
    assert_eq!((ids(&seen), texts(&seen)), (vec![5, 6], "two three".to_owned()));
    quiet(&mut resumed).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn chunks_the_live_path_lost_are_read_from_the_store_in_order(pool: PgPool) {
    let store = store(&pool);
    let streams = local_streams(&store);
    let mut run = HandRun::streaming(&store, &streams).await;
    let mut reader = streams.open(run.org_id, run.run_id, Some(3)).await.unwrap();

    run.send_live(0, "a");
    // Chunks 1 and 2 are lost on the way; 3 arrives and must wait for them.
    run.send_live(3, "d");
    assert_eq!(ids(&frames(&mut reader, 1).await), [4]);
    quiet(&mut reader).await;
    run.record_chunks(&["a", "b", "c", "d"]).await;

    let seen = frames(&mut reader, 3).await;
    assert_eq!((ids(&seen), texts(&seen)), (vec![5, 6, 7], "bcd".to_owned()));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_cancel_while_the_model_streams_ends_the_stream_after_the_text_sent_live(pool: PgPool) {
    let store = store(&pool);
    let streams = local_streams(&store);
    let mut run = HandRun::streaming(&store, &streams).await;
    let mut reader = streams.open(run.org_id, run.run_id, Some(3)).await.unwrap();
    run.send_live(0, "never ");
    run.send_live(1, "recorded");
    assert_eq!(ids(&frames(&mut reader, 2).await), [4, 5]);

    run.cancel().await;

    let StreamItem::Frame(cancelled) = next(&mut reader).await else {
        panic!("expected the cancel")
    };
    assert_eq!(cancelled.event_type, "run.cancelled");
    assert_eq!(
        cancelled.id,
        4 + MAX_UNRECORDED_IDS,
        "the ids sent live are skipped, never reused"
    );
    assert_eq!(next(&mut reader).await, StreamItem::Ended);
    // A reader resuming after a chunk only ever sent live is still served.
    let mut resumed = streams.open(run.org_id, run.run_id, Some(5)).await.unwrap();
    let seen = frames(&mut resumed, 1).await;
    assert_eq!(seen[0].event_type, "run.cancelled");
    assert_eq!(next(&mut resumed).await, StreamItem::Ended);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reader_too_slow_for_its_queue_is_cut_off_and_the_others_are_not(pool: PgPool) {
    let store = store(&pool);
    let limits = FeedLimits {
        reader_queue: 16,
        recent: 1_024,
    };
    let streams = RunStreams::local(store.clone(), limits);
    let mut run = HandRun::streaming(&store, &streams).await;
    let mut slow = streams.open(run.org_id, run.run_id, Some(3)).await.unwrap();
    let mut keeping_up = streams.open(run.org_id, run.run_id, Some(3)).await.unwrap();

    let mut sent = String::new();
    for index in 0..100 {
        let text = format!("{index} ");
        run.send_live(index, &text);
        sent.push_str(&text);
        // The other reader reads as it comes.
        let seen = frames(&mut keeping_up, 1).await;
        assert_eq!(seen[0].id, run.chunk_id(index));
    }

    assert_eq!(next(&mut slow).await, StreamItem::CutOff { last_id: 3 });
    // Resuming from the last id it was sent, it gets every chunk (recorded by now).
    let chunks: Vec<String> = (0..100).map(|index| format!("{index} ")).collect();
    let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
    run.record_chunks(&chunks).await;
    let mut resumed = streams.open(run.org_id, run.run_id, Some(3)).await.unwrap();
    let seen = frames(&mut resumed, 100).await;
    assert_eq!(texts(&seen), sent);
    assert_eq!(ids(&seen), (4..104).collect::<Vec<u64>>());
}

#[sqlx::test(migrations = "../migrations")]
async fn an_id_the_run_never_had_and_another_organization_are_refused(pool: PgPool) {
    let store = store(&pool);
    let streams = local_streams(&store);
    let mut run = HandRun::streaming(&store, &streams).await;
    assert!(streams.open(run.org_id, run.run_id, Some(3)).await.is_ok());
    run.cancel().await;
    let last = run.chunk_id(0) - 1;

    let beyond = streams.open(run.org_id, run.run_id, Some(last + 1)).await;
    assert!(
        matches!(beyond, Err(OpenError::UnknownEventId { requested, last: known }) if requested == last + 1 && known == last),
        "{beyond:?}"
    );
    let foreign = streams.open(Uuid::now_v7(), run.run_id, None).await;
    assert!(matches!(foreign, Err(OpenError::RunNotFound)), "{foreign:?}");
    let unknown = streams.open(run.org_id, Uuid::now_v7(), None).await;
    assert!(matches!(unknown, Err(OpenError::RunNotFound)), "{unknown:?}");
}
