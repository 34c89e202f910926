//! The raw limit of a durable run on this machine: the same 3-step runs against the same
//! instant LLM and tool servers, with nothing but what the rules require between the
//! calls: each step's rows committed before the next request leaves (the answer and the tool
//! call's start before the tool request, the tool's result and the next call's start before the
//! next LLM request, the final answer and the run's end before the run counts as ended). No
//! HTTP API, no aggregates, no JSON beyond parsing the answers, no read models, no relay.
//!
//! Two ways to commit, both measured, so the figure is a floor whichever the runtime used:
//! - **a connection per run**: each run's rows in one autocommit `INSERT … SELECT FROM unnest`
//!   on a connection the run's task keeps (one round trip each, no pool ping);
//! - **group commit**: two writer tasks, each on a connection of its own, take every run's
//!   pending rows, write them with one such statement and answer them all (what Agentry's
//!   grouped appends do across runs, with as many statements in flight).
//!
//! Agentry is stopped before these phases, so they have the machine to themselves.
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
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use crate::servers::Timeline;
use crate::support::measure;

/// How a raw run makes its rows durable.
#[derive(Clone)]
pub enum Commit {
    /// One autocommit statement per step on a connection of the run's own (taken once, so no
    /// pool ping per statement).
    PerRun(PgPool),
    /// [`WRITERS`] writers, each on a connection of its own, committing every run's pending
    /// rows together (as Agentry's grouped appends do, with as many statements in flight).
    Grouped(mpsc::UnboundedSender<(usize, oneshot::Sender<()>)>),
}

/// How many group-commit statements may be in flight at once (Agentry's group commit: 2).
const WRITERS: usize = 2;

/// What one run's task commits with, kept for all its runs.
pub enum Committer {
    Own(PoolConnection<Postgres>),
    Grouped(mpsc::UnboundedSender<(usize, oneshot::Sender<()>)>),
}

impl Commit {
    /// The group-commit writers on connections of `pool`.
    pub async fn grouped(pool: &PgPool, payload: String) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel::<(usize, oneshot::Sender<()>)>();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..WRITERS {
            let (receiver, payload) = (Arc::clone(&receiver), payload.clone());
            let mut connection = pool.acquire().await.unwrap();
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut receiver = receiver.lock().await;
                        let Some(first) = receiver.recv().await else {
                            return;
                        };
                        let mut batch = vec![first];
                        while let Ok(next) = receiver.try_recv() {
                            batch.push(next);
                        }
                        batch
                    };
                    let rows: usize = batch.iter().map(|(rows, _)| rows).sum();
                    insert(&mut connection, rows, &payload).await;
                    for (_, done) in batch {
                        let _ = done.send(());
                    }
                }
            });
        }
        Self::Grouped(sender)
    }

    /// What one run's task commits with.
    async fn committer(&self) -> Committer {
        match self {
            Self::PerRun(pool) => Committer::Own(pool.acquire().await.unwrap()),
            Self::Grouped(writers) => Committer::Grouped(writers.clone()),
        }
    }
}

impl Committer {
    /// Makes `rows` rows durable.
    async fn rows(&mut self, rows: usize, payload: &str) {
        match self {
            Self::Own(connection) => insert(connection, rows, payload).await,
            Self::Grouped(writers) => {
                let (done, committed) = oneshot::channel();
                writers.send((rows, done)).unwrap();
                committed.await.unwrap();
            }
        }
    }
}

/// `rows` copies of `payload` into the bare table, in one autocommit statement.
async fn insert(connection: &mut PgConnection, rows: usize, payload: &str) {
    let payloads = vec![payload.to_owned(); rows];
    sqlx::query(
        "INSERT INTO bare (aggregate_id, payload, metadata) \
         SELECT 'raw', p::json, '{}'::json FROM unnest($1::text[]) AS p",
    )
    .bind(&payloads)
    .execute(connection)
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
    async fn run(&self, tag: &str, payload: &str, commit: &mut Committer) -> DateTime<Utc> {
        let mut messages = vec![
            json!({ "role": "system", "content": "Answer briefly." }),
            json!({ "role": "user", "content": tag }),
        ];
        commit.rows(2, payload).await; // run started, first call started
        let first = self.chat(&messages).await;
        let call = &first["tool_calls"][0];
        let arguments = call["function"]["arguments"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        commit.rows(3, payload).await; // call completed, tool call requested and started
        let result = self.post(&self.tool_url, arguments).await;
        commit.rows(2, payload).await; // tool call completed, next call started
        messages.push(json!({ "role": "assistant", "tool_calls": [call] }));
        messages.push(json!({ "role": "tool", "tool_call_id": call["id"], "content": result }));
        self.chat(&messages).await;
        commit.rows(2, payload).await; // answer, run completed
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
            let mut committer = raw.commit.committer().await;
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) {
                sequence += 1;
                let tag = format!("raw run {concurrency}-{number}-{sequence}");
                let started_measuring = measuring.load(Ordering::Relaxed);
                let ended = raw.run(&tag, &payload, &mut committer).await;
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
