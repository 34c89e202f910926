//! Shared test plumbing: stores, contexts, NATS (shared and private), and stream readers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use commands::relay::{NatsBus, STREAM_NAME};
use commands::store::NewEvent;
use commands::{CommandContext, EventBus, EventStore, Relay};
use domain::Actor;
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The store every test uses: the real one, with the domain's upcasters.
pub fn store(pool: &PgPool) -> EventStore {
    EventStore::new(pool.clone(), domain::upcasting::upcasters())
}

/// A small stored event, for tests of the store and the relay that need no aggregate.
pub fn renamed_event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "organization.renamed".to_owned(),
        event_version: "1".to_owned(),
        payload: json!({ "type": "organization.renamed", "name": format!("name {n}") }).to_string(),
    }
}

/// A user acting in a fresh organization.
pub fn context(org_id: Uuid) -> CommandContext {
    CommandContext {
        actor: Actor::User { id: Uuid::new_v4() },
        org_id: Some(org_id),
        request_id: Some(format!("req-{}", Uuid::new_v4())),
        correlation_id: Uuid::now_v7(),
        causation_id: Some(Uuid::now_v7()),
        impersonator_id: None,
    }
}

/// The machine's NATS (CI makes sure it runs), overridable with `NATS_TEST_URL`.
pub fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub async fn nats_bus(url: &str) -> NatsBus {
    NatsBus::connect(url).await.expect("NATS client")
}

/// Starts a relay in the background; cancel the token to stop it.
pub fn spawn_relay(pool: &PgPool, store: &EventStore, bus: EventBus, name: &str) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let relay = Relay::new(pool.clone(), bus, store.signal().clone()).with_name(name);
    tokio::spawn(relay.run(shutdown.clone()));
    shutdown
}

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

/// A nats-server of the test's own, so it can be killed without disturbing anyone else.
pub struct PrivateNats {
    pub port: u16,
    store_dir: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let store_dir = std::env::temp_dir().join(format!("agentry-nats-{}", Uuid::new_v4()));
        let mut nats = Self {
            port,
            store_dir,
            child: None,
        };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store directory, and waits until it answers.
    pub fn restart(&mut self) {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned());
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (NATS_SERVER_BIN or /usr/sbin/nats-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private nats-server did not start on port {}", self.port);
    }

    /// SIGKILL: the server vanishes mid-stream, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
