//! What the bus carries validates against `docs/event.schema.json`: the real server publishing
//! to a NATS of the test's own, driven through flows that write nearly every event type, and
//! every message on `agentry.*.events.>` checked against the published schema, the same file a
//! subscriber would use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flows;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventstore::relay::{BusEvent, EVENT_SCHEMA_PATH, subject_for};
use futures::StreamExt;
use serde_json::{Value, json};
use testkit::PrivateNats;
use tokio::task::JoinHandle;

use crate::helpers::TestApp;
use crate::run_flows::support::Flow;

/// Event types no flow here writes: no route records them today (a rename, a password change
/// while signed in).
const NOT_WRITTEN_BY_ANY_ROUTE: [&str; 2] = ["organization.renamed", "user.password_changed"];

/// How long the relay may take to publish everything the flows wrote.
const PUBLISH_WAIT: Duration = Duration::from_secs(30);

/// Every message on `agentry.*.events.>`, as a core NATS subscriber receives it.
struct BusRecorder {
    received: Arc<Mutex<Vec<async_nats::Message>>>,
    task: JoinHandle<()>,
}

impl BusRecorder {
    /// Subscribed (and the subscription registered with the server) when it returns.
    async fn subscribe(url: &str) -> Self {
        let client = async_nats::connect(url).await.unwrap();
        let mut subscription = client.subscribe("agentry.*.events.>").await.unwrap();
        client.flush().await.unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(message) = subscription.next().await {
                sink.lock().unwrap().push(message);
            }
        });
        Self { received, task }
    }

    /// Every message, once each event the store holds has arrived.
    async fn everything_stored(&self, app: &TestApp) -> Vec<async_nats::Message> {
        let started = Instant::now();
        loop {
            let stored = usize::try_from(app.event_count().await).unwrap();
            let received = self.received.lock().unwrap().clone();
            let distinct: BTreeSet<String> = received
                .iter()
                .filter_map(|message| serde_json::from_slice::<Value>(&message.payload).ok())
                .map(|event| event["id"].to_string())
                .collect();
            if distinct.len() >= stored {
                return received;
            }
            assert!(
                started.elapsed() < PUBLISH_WAIT,
                "{} of {stored} stored events reached the bus within {PUBLISH_WAIT:?}",
                distinct.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for BusRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The published schema, read from the file as a subscriber would.
fn published_schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(EVENT_SCHEMA_PATH);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Why `message` is not what the contract promises: schema errors, a payload that is not a
/// `BusEvent`, or a subject other than the event's.
fn problems(validator: &jsonschema::Validator, message: &async_nats::Message) -> Vec<String> {
    let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else {
        return vec!["not JSON".to_owned()];
    };
    let mut problems: Vec<String> = validator
        .iter_errors(&event)
        .map(|error| format!("{error} (at {})", error.instance_path()))
        .collect();
    match serde_json::from_value::<BusEvent>(event) {
        Ok(bus) if subject_for(&bus.event) != message.subject.as_str() => {
            problems.push(format!("subject {} is not the event's", message.subject));
        }
        Ok(_) => {}
        Err(error) => problems.push(format!("not a BusEvent: {error}")),
    }
    problems
}

#[tokio::test]
async fn every_event_the_bus_carries_validates_against_the_published_schema() {
    let nats = PrivateNats::start();
    let bus = BusRecorder::subscribe(&nats.url()).await;
    let url = nats.url();
    let flow = Flow::start_with(move |settings| settings.bus.nats_url = Some(url)).await;

    flows::identity(&flow).await;
    flows::administration(&flow).await;
    let echo_agent = flows::tools_and_agents(&flow).await;
    flows::runs(&flow, &echo_agent).await;
    let messages = bus.everything_stored(&flow.app).await;

    let schema = published_schema();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let mut failures = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for message in &messages {
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        let kind = event["type"].as_str().unwrap_or("?").to_owned();
        let found = problems(&validator, message);
        if !found.is_empty() {
            failures.insert(format!("{kind} {}", event["id"]), (found, event));
        }
        seen.insert(kind);
    }
    assert!(failures.is_empty(), "messages the schema refuses: {failures:#?}");
    eprintln!(
        "{} messages of {} types validated: {seen:?}",
        messages.len(),
        seen.len()
    );

    let unseen: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|kind| !seen.contains(*kind) && !NOT_WRITTEN_BY_ANY_ROUTE.contains(kind))
        .collect();
    assert!(
        unseen.is_empty(),
        "the flows wrote no {unseen:?} ({} messages of {} types)",
        messages.len(),
        seen.len()
    );

    the_schema_refuses_a_message_changed_in_transit(&validator, &messages);
    flow.cleanup().await;
}

/// The check above can fail: one real message, changed as drift would change it, is refused.
fn the_schema_refuses_a_message_changed_in_transit(
    validator: &jsonschema::Validator,
    messages: &[async_nats::Message],
) {
    let original: Value = messages
        .iter()
        .map(|message| serde_json::from_slice::<Value>(&message.payload).unwrap())
        .find(|event| event["type"] == "tool_call.completed")
        .unwrap();
    assert!(validator.is_valid(&original));
    type Change = fn(&mut Value);
    let changes: [(&str, Change); 3] = [
        ("a field the type does not have", |e| {
            e["data"]["exit_code"] = json!(0)
        }),
        ("a field renamed", |e| {
            let output = e["data"].as_object_mut().unwrap().remove("output").unwrap();
            e["data"]["result"] = output;
        }),
        ("a digest that must never leave the store", |e| {
            e["data"]["output_hash"] = json!("sha256:…");
        }),
    ];
    for (what, change) in changes {
        let mut changed = original.clone();
        change(&mut changed);
        let errors: Vec<String> = validator.iter_errors(&changed).map(|e| e.to_string()).collect();
        assert!(!errors.is_empty(), "{what} was accepted: {changed:#}");
    }
}
