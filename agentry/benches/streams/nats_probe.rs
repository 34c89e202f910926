//! The raw limit of the multi-node live path, in the same run: core NATS publish → subscribe
//! on this machine at the latency phase's message rate, one publisher per run and one
//! subscriber for all (as a node subscribes once), each message carrying its send time.

use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;

use crate::llm::now_micros;
use crate::phases::Streaming;

/// Token-sized messages (a delta frame's JSON is about this long).
const PAYLOAD_BYTES: usize = 120;

/// Publishes `load.runs` subjects, each a message every `load.every`, for the warm-up and the
/// window; answers the latencies (µs) seen over the window.
pub async fn probe(url: &str, load: &Streaming) -> Histogram<u64> {
    let every = load.every.unwrap_or(Duration::from_millis(1));
    let client = async_nats::connect(url).await.expect("NATS answers");
    let mut subscription = client.subscribe("bench.streams.probe.>").await.unwrap();
    client.flush().await.unwrap();
    let publishers: Vec<_> = (0..load.runs)
        .map(|run| {
            let client = client.clone();
            tokio::spawn(async move {
                let subject = format!("bench.streams.probe.{run}");
                let mut pace = tokio::time::interval(every);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    pace.tick().await;
                    let mut payload = format!("{} ", now_micros()).into_bytes();
                    payload.resize(PAYLOAD_BYTES, b' ');
                    if client.publish(subject.clone(), payload.into()).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let mut latency = Histogram::new_with_bounds(1, 600_000_000, 3).unwrap();
    let measuring_from = tokio::time::Instant::now() + load.warmup;
    let until = measuring_from + load.window;
    while let Ok(Some(message)) = tokio::time::timeout_at(until, subscription.next()).await {
        let received = now_micros();
        if tokio::time::Instant::now() < measuring_from {
            continue;
        }
        let sent = std::str::from_utf8(&message.payload)
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(sent) = sent {
            latency.saturating_record(received.saturating_sub(sent));
        }
    }
    for publisher in publishers {
        publisher.abort();
    }
    latency
}
