//! An event larger than the NATS server's `max_payload` must not stop the relay: it is
//! published without its large `data` fields, flagged as cut, and stays whole in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventstore::EventBus;
use eventstore::log::read_event;
use eventstore::store::NewEvent;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, nats_bus, nats_url, renamed_event, spawn_relay, store, stream_events};

const FIVE_MIB: usize = 5 * 1024 * 1024;

fn tool_output(bytes: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "tool_call.completed".to_owned(),
        event_version: "1".to_owned(),
        payload: json!({
            "type": "tool_call.completed",
            "call_id": "call-1",
            "output": "o".repeat(bytes),
        })
        .to_string(),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_5_mib_event_does_not_delay_the_events_after_it(pool: PgPool) {
    let store = store(&pool);
    let bus = nats_bus(&nats_url()).await;
    let max_payload = bus.client().max_payload();
    let relay = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    let org_id = Uuid::now_v7();
    let ctx = context(org_id);
    let big = tool_output(FIVE_MIB);
    store
        .append("run", "big", 0, std::slice::from_ref(&big), &ctx)
        .await
        .unwrap();
    let small: Vec<NewEvent> = (0..10).map(renamed_event).collect();
    for (n, event) in small.iter().enumerate() {
        store
            .append(
                "organization",
                &format!("after-{n}"),
                0,
                std::slice::from_ref(event),
                &ctx,
            )
            .await
            .unwrap();
    }
    let started = Instant::now();

    // Generous for a loaded two-core machine: an idle relay delivers these in milliseconds.
    let published = stream_events(bus.jetstream(), org_id, 11, Duration::from_secs(20)).await;
    let waited = started.elapsed();
    relay.cancel();

    let ids: Vec<&str> = published.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut expected = vec![big.event_id.to_string()];
    expected.extend(small.iter().map(|e| e.event_id.to_string()));
    assert_eq!(
        ids, expected,
        "every event published once, in log order (after {waited:?})"
    );
    let cut = &published[0];
    assert_eq!(cut["truncated"], true, "{}", short(cut));
    assert_eq!(cut["truncated_fields"], json!(["output"]), "{}", short(cut));
    assert_eq!(
        cut["data"],
        json!({ "type": "tool_call.completed", "call_id": "call-1" }),
        "the small fields stay"
    );
    assert!(serde_json::to_vec(cut).unwrap().len() < max_payload);
    for event in &published[1..] {
        assert!(event.get("truncated").is_none(), "{event}");
        assert!(event.get("truncated_fields").is_none(), "{event}");
    }

    let whole = read_event(&pool, store.upcasters(), org_id, big.event_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(whole.data["output"].as_str().unwrap().len(), FIVE_MIB);
}

/// The event JSON without its long strings, for assertion messages.
fn short(event: &Value) -> String {
    let mut event = event.clone();
    if let Some(Value::Object(data)) = event.get_mut("data") {
        for value in data.values_mut() {
            if value.as_str().is_some_and(|text| text.len() > 100) {
                *value = json!("…");
            }
        }
    }
    event.to_string()
}

/// A nats-server of this test's own with a small `max_payload`, killed on drop.
struct SmallPayloadNats {
    port: u16,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl SmallPayloadNats {
    fn start(max_payload: usize) -> Self {
        let port = testkit::free_port();
        let dir = std::env::temp_dir().join(format!("agentry-nats-small-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("nats.conf");
        let store = dir.join("js").display().to_string();
        std::fs::write(
            &config,
            format!("host: 127.0.0.1\nport: {port}\nmax_payload: {max_payload}\njetstream {{ store_dir: \"{store}\" }}\n"),
        )
        .unwrap();
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned());
        let mut child = std::process::Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { port, dir, child };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server with max_payload {max_payload} did not start");
    }
}

impl Drop for SmallPayloadNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_relay_cuts_to_the_limit_the_connected_server_announces(pool: PgPool) {
    let nats = SmallPayloadNats::start(64 * 1024);
    let store = store(&pool);
    let bus = nats_bus(&format!("nats://127.0.0.1:{}", nats.port)).await;
    let relay = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    let org_id = Uuid::now_v7();
    let ctx = context(org_id);
    // Far below the default 1 MiB, far above this server's 64 KiB.
    let big = tool_output(200 * 1024);
    let after = renamed_event(1);
    store
        .append("run", "big", 0, std::slice::from_ref(&big), &ctx)
        .await
        .unwrap();
    store
        .append("organization", "after", 0, std::slice::from_ref(&after), &ctx)
        .await
        .unwrap();

    let published = stream_events(bus.jetstream(), org_id, 2, Duration::from_secs(20)).await;
    relay.cancel();

    assert_eq!(
        bus.client().max_payload(),
        64 * 1024,
        "the server's limit was read"
    );
    let ids: Vec<&str> = published.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [big.event_id.to_string(), after.event_id.to_string()]);
    assert_eq!(
        published[0]["truncated_fields"],
        json!(["output"]),
        "{}",
        short(&published[0])
    );
}
