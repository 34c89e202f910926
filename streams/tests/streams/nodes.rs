//! Two nodes on the real NATS: a run recorded and streamed live on one is read on the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::PgPool;
use streams::{FeedLimits, LiveConnection, RunStreams};

use crate::support::{HandRun, frames, ids, store, texts};

fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn node(store: &eventstore::EventStore) -> RunStreams {
    let connection = LiveConnection::connect(&nats_url()).await.expect("NATS");
    RunStreams::nats(store.clone(), connection, FeedLimits::default())
        .await
        .expect("subscribed")
}

#[sqlx::test(migrations = "../migrations")]
async fn chunks_streamed_on_one_node_reach_a_reader_on_another_and_resume_there(pool: PgPool) {
    let store = store(&pool);
    let (executing, serving) = (node(&store).await, node(&store).await);
    let mut run = HandRun::streaming(&store, &executing).await;
    let mut reader = serving.open(run.org_id, run.run_id, None).await.unwrap();
    assert_eq!(ids(&frames(&mut reader, 3).await), [1, 2, 3]);

    run.send_live(0, "across ");
    run.send_live(1, "nodes");
    let seen = frames(&mut reader, 2).await;
    assert_eq!(
        (ids(&seen), texts(&seen)),
        (vec![4, 5], "across nodes".to_owned())
    );
    assert_eq!(
        executing.router().feed_count(),
        0,
        "the executing node has no reader of it"
    );

    // Another reader there, resuming after the first chunk (not recorded yet), mid-message.
    let mut resumed = serving.open(run.org_id, run.run_id, Some(4)).await.unwrap();
    let seen = frames(&mut resumed, 1).await;
    assert_eq!((ids(&seen), texts(&seen)), (vec![5], "nodes".to_owned()));
    run.record_chunks(&["across ", "nodes"]).await;
    run.cancel().await;
    let ended = frames(&mut resumed, 1).await;
    assert_eq!(ended[0].event_type, "run.cancelled");
    assert_eq!(frames(&mut reader, 1).await[0].event_type, "run.cancelled");
}
