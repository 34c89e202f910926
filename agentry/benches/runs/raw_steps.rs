//! The raw limit of a durable run on this machine: the same 3-step runs against the same
//! instant LLM and tool servers, with nothing but what the rules require between the
//! calls: each step's rows committed before the next request leaves (the answer and the tool
//! call's start before the tool request, the tool's result and the next call's start before the
//! next LLM request, the final answer and the run's end before the run counts as ended). No
//! HTTP API, no aggregates, no JSON beyond parsing the answers, no read models, no relay.
//!
//! Two ways to commit, both measured, so the figure is a floor whichever the runtime used:
//! - **a connection per run**: each run's rows in one autocommit `INSERT … SELECT FROM unnest`
//!   on a pooled connection (one round trip each);
//! - **group commit**: one writer task takes every run's pending rows, writes them with one
//!   such statement and answers them all (what Agentry's grouped appends do across runs).
//!
//! The overhead per step is taken exactly as for Agentry (`report.rs`): the LLM's last byte to
//! the next LLM request, and the last answer's last byte to the run's end (here: the commit of
//! its last rows returned).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::servers::Timeline;
use crate::support::measure;

/// How a raw run makes its rows durable.
#[derive(Clone)]
pub enum Commit {
    /// One autocommit statement per step on a connection of the pool.
    PerRun(PgPool),
    /// One writer committing every run's pending rows together.
    Grouped(mpsc::UnboundedSender<(usize, oneshot::Sender<()>)>),
}

impl Commit {
    /// A group-commit writer on `pool`'s connections, one batch at a time.
    pub fn grouped(pool: PgPool, payload: String) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel::<(usize, oneshot::Sender<()>)>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = receiver.try_recv() {
                    batch.push(next);
                }
                let rows: usize = batch.iter().map(|(rows, _)| rows).sum();
                insert(&pool, rows, &payload).await;
                for (_, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        Self::Grouped(sender)
    }

    /// Makes `rows` rows durable.
    async fn rows(&self, rows: usize, payload: &str) {
        match self {
            Self::PerRun(pool) => insert(pool, rows, payload).await,
            Self::Grouped(writer) => {
                let (done, committed) = oneshot::channel();
                writer.send((rows, done)).unwrap();
                committed.await.unwrap();
            }
        }
    }
}

/// `rows` copies of `payload` into the bare table, in one autocommit statement.
async fn insert(pool: &PgPool, rows: usize, payload: &str) {
    let payloads = vec![payload.to_owned(); rows];
    sqlx::query(
        "INSERT INTO bare (aggregate_id, payload, metadata) \
         SELECT 'raw', p::json, '{}'::json FROM unnest($1::text[]) AS p",
    )
    .bind(&payloads)
    .execute(pool)
    .await
    .unwrap();
}

/// The instant servers and how to commit: what one raw run needs.
#[derive(Clone)]
pub struct RawRuns {
    pub http: reqwest::Client,
    pub llm_url: String,
    pub tool_url: String,
    pub timeline: Arc<Timeline>,
    pub commit: Commit,
}

impl RawRuns {
    /// One run tagged `tag`; answers when its end was committed.
    async fn run(&self, tag: &str, payload: &str) -> DateTime<Utc> {
        let mut messages = vec![
            json!({ "role": "system", "content": "Answer briefly." }),
            json!({ "role": "user", "content": tag }),
        ];
        self.commit.rows(2, payload).await; // run started, first call started
        let first = self.chat(&messages).await;
        let call = &first["tool_calls"][0];
        let arguments = call["function"]["arguments"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.commit.rows(3, payload).await; // call completed, tool call requested and started
        let result = self.post(&self.tool_url, arguments).await;
        self.commit.rows(2, payload).await; // tool call completed, next call started
        messages.push(json!({ "role": "assistant", "tool_calls": [call] }));
        messages.push(json!({ "role": "tool", "tool_call_id": call["id"], "content": result }));
        self.chat(&messages).await;
        self.commit.rows(2, payload).await; // answer, run completed
        Utc::now()
    }

    /// POSTs the JSON `body` to `url`; answers the response's whole body.
    async fn post(&self, url: &str, body: String) -> String {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }

    /// One streamed chat completion; answers the assistant message its deltas make.
    async fn chat(&self, messages: &[Value]) -> Value {
        let body = json!({ "model": "bench-model", "stream": true, "messages": messages });
        let text = self
            .post(&format!("{}/chat/completions", self.llm_url), body.to_string())
            .await;
        let mut message = json!({ "content": "" });
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let delta = &chunk["choices"][0]["delta"];
            if let Some(text) = delta["content"].as_str() {
                let content = format!("{}{text}", message["content"].as_str().unwrap_or_default());
                message["content"] = json!(content);
            }
            if let Some(calls) = delta.get("tool_calls") {
                message["tool_calls"] = calls.clone();
            }
        }
        message
    }
}

/// Per-step overhead of raw runs (µs) and runs per second at `concurrency`, over `phase`.
pub async fn measure_raw(
    raw: &RawRuns,
    concurrency: usize,
    phase: Duration,
    payload: &str,
) -> (Histogram<u64>, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
    ));
    let mut tasks = Vec::new();
    for number in 0..concurrency {
        let (raw, count, stop, measuring, steps) = (
            raw.clone(),
            count.clone(),
            stop.clone(),
            measuring.clone(),
            steps.clone(),
        );
        let payload = payload.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) {
                sequence += 1;
                let tag = format!("raw run {concurrency}-{number}-{sequence}");
                let started_measuring = measuring.load(Ordering::Relaxed);
                let ended = raw.run(&tag, &payload).await;
                let times = raw.timeline.take(&tag);
                count.fetch_add(1, Ordering::Relaxed);
                if !(started_measuring && measuring.load(Ordering::Relaxed)) {
                    continue;
                }
                let mut steps = steps.lock().unwrap();
                steps
                    .record(micros(times.llm_last_bytes[0], times.llm_requests[1]))
                    .unwrap();
                steps.record(micros(times.llm_last_bytes[1], ended)).unwrap();
            }
        }));
    }
    let rate = measure(phase, &count, &stop, tasks, &measuring).await;
    let steps = steps.lock().unwrap().clone();
    (steps, rate)
}

fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_microseconds().unwrap_or(0).max(0) as u64
}
