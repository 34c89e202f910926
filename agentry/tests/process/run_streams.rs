//! A run's stream across real processes: executed by one `agentry serve`, read from another,
//! resumed mid-message on either, and across a takeover after the executing one is killed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::node::Node;
use crate::run_crashes::{FINAL_ANSWER, TwoWorkers};

/// One event as the SSE route sent it.
#[derive(Clone, Debug)]
struct Received {
    id: u64,
    event_type: String,
    data: Value,
}

/// An open SSE stream of a run, read event by event.
struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// Whether the server ended the response.
    ended: bool,
}

impl SseReader {
    async fn open(node: &Node, token: &str, run_id: uuid::Uuid, last_event_id: Option<u64>) -> Self {
        let mut request = reqwest::Client::new()
            .get(node.url(&format!("/v1/runs/{run_id}/events")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next event, `None` once the server ended the stream; fails after `within`.
    async fn next(&mut self, within: Duration) -> Option<Received> {
        let deadline = Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                Ok(None) => self.ended = true,
                Err(_) => panic!("no event within {within:?}"),
            }
        }
    }

    /// Events until one with `count` deltas has been read.
    async fn deltas(&mut self, count: usize) -> Vec<Received> {
        let mut read = Vec::new();
        while read
            .iter()
            .filter(|event: &&Received| event.event_type == "message.delta")
            .count()
            < count
        {
            read.push(
                self.next(Duration::from_secs(10))
                    .await
                    .expect("the stream goes on"),
            );
        }
        read
    }
}

/// An SSE block's event (`id:` and `data:` lines); comments and heartbeats are not events.
fn parse(block: &str) -> Option<Received> {
    let data: String = block
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    if data.is_empty() {
        return None;
    }
    let json: Value = serde_json::from_str(&data).unwrap();
    Some(Received {
        id: json["id"].as_u64().unwrap_or(0),
        event_type: json["type"].as_str().unwrap_or_default().to_owned(),
        data: json["data"].clone(),
    })
}

/// Each event follows the one before with the next id, or skips ids it says it skips.
fn assert_consecutive(events: &[Received]) {
    for pair in events.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let skipped = after.data["skipped_ids"].as_u64().unwrap_or(0);
        assert!(
            after.id > before.id && after.id - skipped <= before.id + 1,
            "{} ({}) after {} ({}): a hole or a repeat",
            after.id,
            after.event_type,
            before.id,
            before.event_type
        );
    }
}

fn text(events: &[Received]) -> String {
    events
        .iter()
        .filter(|event| event.event_type == "message.delta")
        .filter_map(|event| event.data["text"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_executed_on_one_node_streams_from_the_other_and_resumes_on_either_even_across_a_takeover() {
    let workers = TwoWorkers::start(Duration::from_secs(1)).await;
    let (run_id, token) = (workers.run_id, workers.token.clone());

    // From the start, on the node that does not execute the run, mid-message.
    let mut first = SseReader::open(&workers.idle, &token, run_id, None).await;
    let mut seen = first.deltas(5).await;
    assert_eq!(
        seen[0].id, 1,
        "a stream without an id starts at the run's first event"
    );
    drop(first);
    // Resumed on the executing node after the last id, mid-message.
    let last = seen.last().unwrap().id;
    let mut second = SseReader::open(&workers.executing, &token, run_id, Some(last)).await;
    let resumed = second.deltas(5).await;
    assert_eq!(resumed[0].id, last + 1, "resumed right after the last id");
    seen.extend(resumed);
    drop(second);

    // Back on the other node, which takes the run over when the executing one is killed.
    let last = seen.last().unwrap().id;
    let mut third = SseReader::open(&workers.idle, &token, run_id, Some(last)).await;
    seen.extend(third.deltas(2).await);
    let killed = Instant::now();
    workers.executing.signal("KILL");
    let took = workers.wait_taken_over(killed).await;
    eprintln!("taken over {took:?} after the kill");
    while let Some(event) = third.next(Duration::from_secs(30)).await {
        seen.push(event);
    }

    assert_consecutive(&seen);
    let kinds: Vec<&str> = seen.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"run.completed"), "{kinds:?}");
    let resumption = seen
        .iter()
        .position(|event| event.event_type == "run.resumed")
        .expect("the takeover is in the stream");
    assert_eq!(seen[resumption].data["discarded_step"], 1);
    // Before the takeover: the slow answer's chunks, each once and in order, across three
    // connections to two nodes.
    let streamed_before = text(&seen[..resumption]);
    let words: Vec<&str> = streamed_before.split_whitespace().collect();
    let expected: Vec<String> = (0..words.len()).map(|n| format!("slow{n}")).collect();
    assert_eq!(words, expected, "no chunk lost or repeated");
    // After it: the answer the run finished with, whole.
    assert_eq!(text(&seen[resumption..]), FINAL_ANSWER);
    let completed = seen
        .iter()
        .find(|event| event.event_type == "message.completed")
        .unwrap();
    assert_eq!(completed.data["content"], FINAL_ANSWER);
    workers.finish().await;
}
