//! Reading what the relay published.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;

/// The stream the relay publishes to.
const STREAM_NAME: &str = "AGENTRY_EVENTS";

/// Every message the stream holds for one organization, in stream order, read by an ordered
/// consumer until `expected` arrived and then a quiet moment passed (so extras would show).
pub async fn stream_events(
    js: &jetstream::Context,
    org_id: Uuid,
    expected: usize,
    within: Duration,
) -> Vec<Value> {
    // The relay creates the stream on its first publish, which may not have happened yet.
    let mut stream = js.get_stream(STREAM_NAME).await;
    for _ in 0..100 {
        if stream.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream = js.get_stream(STREAM_NAME).await;
    }
    let stream = stream.expect("the relay created the stream");
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("agentry.{org_id}.events.>"),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let wait = if events.len() >= expected {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, messages.next()).await {
            Ok(Some(Ok(message))) => {
                events.push(serde_json::from_slice(&message.payload).expect("event JSON"))
            }
            Ok(Some(Err(error))) => panic!("consumer failed: {error}"),
            Ok(None) | Err(_) => break,
        }
    }
    events
}

/// How many times each event id occurs in `events`.
pub fn id_counts(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events {
        *counts
            .entry(event["id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    counts
}
