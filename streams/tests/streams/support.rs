//! A run driven by hand through the real command bus and store, the way the executor drives
//! one, with its chunks sent live or held back as a test needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use domain::Actor;
use domain::run::{Run, RunCommand};
use eventstore::{CommandBus, CommandContext, EventStore};
use serde_json::Value;
use sqlx::PgPool;
use streams::{FeedLimits, LiveBus, RunStream, RunStreams, StreamFrame, StreamItem};
use uuid::Uuid;

pub const EXECUTOR: Uuid = Uuid::from_u128(0xE1);

pub fn store(pool: &PgPool) -> EventStore {
    EventStore::new(pool.clone(), domain::upcasting::upcasters())
}

/// A run of a fresh organization, recorded through a bus whose commits go live on `streams`.
pub struct HandRun {
    pub org_id: Uuid,
    pub run_id: Uuid,
    bus: CommandBus<Run>,
    live: LiveBus,
    context: CommandContext,
    /// The next id a chunk takes (what the executor computes from its state).
    next_id: u64,
    step: u32,
}

impl HandRun {
    /// Queued, started and with its first model call open: ids 1, 2, 3 recorded.
    pub async fn streaming(store: &EventStore, streams: &RunStreams) -> Self {
        let org_id = Uuid::now_v7();
        let run_id = Uuid::now_v7();
        let context = CommandContext::system(Some(org_id));
        let bus = CommandBus::new(store.clone(), ()).with_observer(streams.observer());
        let mut run = Self {
            org_id,
            run_id,
            bus,
            live: streams.live(),
            context,
            next_id: 1,
            step: 1,
        };
        run.record(RunCommand::Queue {
            run_id,
            org_id,
            conversation_id: Uuid::now_v7(),
            agent_id: Uuid::now_v7(),
            agent_version: 1,
            input: "hello".into(),
        })
        .await;
        run.record(RunCommand::Start {
            executor: EXECUTOR,
            takeover: false,
            then_call_model: None,
        })
        .await;
        run.record(RunCommand::StartLlmCall {
            executor: EXECUTOR,
            model: "echo".into(),
        })
        .await;
        run
    }

    pub async fn record(&mut self, command: RunCommand) {
        let committed = self
            .bus
            .execute(&self.run_id.to_string(), command, &self.context)
            .await
            .expect("recorded");
        self.next_id = committed.state.next_id();
    }

    /// The id chunk `index` of the unrecorded ones takes.
    pub fn chunk_id(&self, index: usize) -> u64 {
        self.next_id + index as u64
    }

    /// Sends chunk `index` (of those not recorded yet) live, as the executor does.
    pub fn send_live(&self, index: usize, text: &str) {
        let frame = StreamFrame::delta(self.run_id, self.chunk_id(index), self.step, text);
        self.live.publish(self.org_id, self.run_id, frame);
    }

    /// Records `chunks` as the executor's batch.
    pub async fn record_chunks(&mut self, chunks: &[&str]) {
        self.record(RunCommand::RecordDeltas {
            executor: EXECUTOR,
            chunks: chunks.iter().map(|chunk| (*chunk).to_owned()).collect(),
        })
        .await;
    }

    /// A person cancels the run (as over REST).
    pub async fn cancel(&mut self) {
        let context = CommandContext {
            actor: Actor::User { id: Uuid::now_v7() },
            ..self.context.clone()
        };
        let committed = self
            .bus
            .execute(
                &self.run_id.to_string(),
                RunCommand::Cancel {
                    by: "user:test".into(),
                    open_call_price: None,
                },
                &context,
            )
            .await
            .expect("cancelled");
        self.next_id = committed.state.next_id();
    }
}

pub fn local_streams(store: &EventStore) -> RunStreams {
    RunStreams::local(store.clone(), FeedLimits::default())
}

/// What a reader saw, as (id, type, text of a delta).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    pub event_type: String,
    pub text: Option<String>,
}

/// The next item, failing the test after 5 s.
pub async fn next(stream: &mut RunStream) -> StreamItem {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream went quiet")
}

/// The next `count` frames.
pub async fn frames(stream: &mut RunStream, count: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    while seen.len() < count {
        match next(stream).await {
            StreamItem::Frame(frame) => seen.push(describe(&frame)),
            other => panic!("expected a frame after {seen:?}, got {other:?}"),
        }
    }
    seen
}

pub fn describe(frame: &StreamFrame) -> Seen {
    let json: Value = serde_json::from_slice(&frame.json).unwrap();
    Seen {
        id: frame.id,
        event_type: json["type"].as_str().unwrap().to_owned(),
        text: json["data"]["text"].as_str().map(str::to_owned),
    }
}

pub fn ids(seen: &[Seen]) -> Vec<u64> {
    seen.iter().map(|seen| seen.id).collect()
}

pub fn texts(seen: &[Seen]) -> String {
    seen.iter().filter_map(|seen| seen.text.clone()).collect()
}

/// There is nothing more for the reader right now.
pub async fn quiet(stream: &mut RunStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("expected nothing, got {item:?}");
    }
}
