//! The live stream never waits for the store: while the run's text cannot be recorded (its
//! appends blocked by a lock), the model's chunks still reach the reader as they come, and once
//! the store is back every chunk is recorded once, in order.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::Reply;
use tokio::time::Instant;

use super::support::{SseReader, events_path, ids_and_types, open_sse, recorded_frames, streamed_text};
use crate::run_flows::support::Flow;

/// How long the test keeps the event log locked against appends.
const BLOCKED_FOR: Duration = Duration::from_millis(1_500);
/// The model's pace: one chunk every this long.
const CHUNK_EVERY: Duration = Duration::from_millis(25);

#[tokio::test]
async fn chunks_keep_streaming_live_while_the_store_cannot_record_them() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    let chunks: Vec<String> = (0..120).map(|n| format!("w{n} ")).collect();
    flow.llm.push(Reply::text(chunks.clone()).every(CHUNK_EVERY));
    let app = &flow.app;
    let (_, run_id) = flow.run(&agent, "Talk").await;
    let mut reader = SseReader::new(open_sse(app, &events_path(&run_id, ""), Some(&flow.token), None).await);

    // The allowed path first: chunks arrive while nothing blocks the store.
    let mut frames: Vec<Value> = Vec::new();
    while deltas(&frames) < 5 {
        frames.push(reader.next().await.expect("deltas before the lock").data);
    }

    // Appends to the log wait for this transaction (reads do not).
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let locked_at = Instant::now();
    let before_lock = deltas(&frames);
    let release = locked_at + BLOCKED_FOR;
    let mut during_lock = 0;
    loop {
        let message = tokio::select! {
            message = reader.next() => message.expect("the run goes on"),
            () = tokio::time::sleep_until(release) => break,
        };
        if message.data["type"] == "message.delta" {
            during_lock += 1;
        }
        frames.push(message.data);
    }
    lock.rollback().await.unwrap();

    // 1.5 s at a chunk every 25 ms is 60 chunks; the executor records its text every 200 ms,
    // and an append that waits must not hold back the chunks behind it.
    assert!(
        during_lock >= 40,
        "only {during_lock} chunks reached the reader while the store was locked \
         ({before_lock} before): the live stream waited for the store"
    );

    frames.extend(reader.read_to_end().await.into_iter().map(|message| message.data));
    assert_eq!(frames.last().unwrap()["type"], "run.completed");
    assert_eq!(streamed_text(&frames), chunks.concat());
    assert_eq!(
        ids_and_types(&frames, &run_id),
        recorded_frames(app, &run_id).await,
        "every event once, as recorded"
    );
    flow.cleanup().await;
}

fn deltas(frames: &[Value]) -> usize {
    frames
        .iter()
        .filter(|frame| frame["type"] == "message.delta")
        .count()
}
