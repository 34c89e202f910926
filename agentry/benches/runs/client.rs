//! A bench client: one run at a time, from creating its conversation to seeing the
//! conversation record the run's end, with the servers' times of the run.
//!
//! Shared by the runs bench and the billing bench (which gives each organization's clients
//! their own token and agent).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::servers::{RunTimes, Timeline};
use crate::support::post;

/// How long one run may take before the bench gives up on it.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

/// What a client needs to start runs and see them end.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub address: String,
    pub token: String,
    pub agent_id: String,
    pub timeline: Arc<Timeline>,
    pub pool: PgPool,
}

/// One run as a client saw it through.
pub struct Finished {
    pub tag: String,
    pub run_id: String,
    pub conversation_id: String,
    pub times: RunTimes,
    /// From `POST …/runs` to the client seeing the conversation record the run's end.
    pub client_latency: Duration,
    /// Started and ended inside the measuring window.
    pub measured: bool,
    /// The bench's own queries for this run (polls for its end).
    pub polls: u32,
}

impl Client {
    /// One run, from creating its conversation to the conversation recording its end. `tag`
    /// is the run's input, unique to it: the LLM and the tool server know the run by it.
    pub async fn run(&self, tag: &str) -> Finished {
        let answered = self.timeline.expect(tag);
        let started = Instant::now();
        let conversation = self
            .post("/v1/conversations", &json!({ "agent_id": self.agent_id }), 201)
            .await;
        let conversation_id = conversation["id"].as_str().unwrap().to_owned();
        let created = started.elapsed();
        let queued = self
            .post(
                &format!("/v1/conversations/{conversation_id}/runs"),
                &json!({ "input": tag }),
                202,
            )
            .await;
        let run_id = queued["run_id"].as_str().unwrap().to_owned();
        tokio::time::timeout(RUN_DEADLINE, answered)
            .await
            .unwrap_or_else(|_| panic!("run {run_id} ({tag}): no final answer within {RUN_DEADLINE:?}"))
            .unwrap();
        let deadline = Instant::now() + RUN_DEADLINE;
        let mut polls = 1;
        while !self.ended(&conversation_id).await {
            polls += 1;
            assert!(Instant::now() < deadline, "run {run_id} ({tag}) did not end");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Finished {
            tag: tag.to_owned(),
            run_id,
            conversation_id,
            times: self.timeline.take(tag),
            client_latency: started.elapsed() - created,
            measured: false,
            polls,
        }
    }

    async fn post(&self, path: &str, body: &Value, expected: u16) -> Value {
        post(&self.http, &self.address, &self.token, path, body, expected).await
    }

    /// Whether the conversation recorded its run's end.
    async fn ended(&self, conversation_id: &str) -> bool {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'conversation' AND aggregate_id = $1 AND event_type = 'conversation.run_ended')",
        )
        .bind(conversation_id)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// The flags and tallies a client's loop shares with the bench: when to stop, whether the
/// measuring window is open, the runs completed and every run seen through.
#[derive(Clone)]
pub struct Tally {
    pub stop: Arc<AtomicBool>,
    pub measuring: Arc<AtomicBool>,
    pub count: Arc<AtomicU64>,
    pub finished: Arc<Mutex<Vec<Finished>>>,
}

impl Client {
    /// Runs one run after another until `tally.stop`, each tagged `{prefix}-{sequence}`; a run
    /// counts in the figures (`measured`) only if it started and ended inside the window.
    pub fn keep_running(self, prefix: String, tally: Tally) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut sequence = 0;
            while !tally.stop.load(Ordering::Relaxed) {
                sequence += 1;
                let started_measuring = tally.measuring.load(Ordering::Relaxed);
                let mut run = self.run(&format!("{prefix}-{sequence}")).await;
                run.measured = started_measuring && tally.measuring.load(Ordering::Relaxed);
                tally.finished.lock().unwrap().push(run);
                tally.count.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
}
