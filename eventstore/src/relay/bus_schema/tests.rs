use std::collections::BTreeMap;
use std::path::PathBuf;

use cqrs_es::DomainEvent;
use domain::agent::{AgentDefinition, AgentEvent, Approval, ApprovalMode};
use domain::run::{ApprovalState, Call, RunEvent, ToolFailure};
use domain::session::SessionEvent;
use domain::user::UserEvent;
use domain::{EmailAddress, PasswordDigest, TokenDigest};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::{CommandContext, RecordedEvent};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(EVENT_SCHEMA_PATH)
}

#[test]
fn the_published_event_schema_is_up_to_date() {
    let written = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        written == bus_event_schema_text(),
        "{EVENT_SCHEMA_PATH} is out of date; rewrite it with \
         `cargo test -p eventstore --lib write_event_schema -- --ignored`"
    );
}

#[test]
#[ignore = "writes docs/event.schema.json"]
fn write_event_schema() -> std::io::Result<()> {
    std::fs::write(schema_path(), bus_event_schema_text())
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = bus_event_schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::meta::validate(&schema).unwrap();
}

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&bus_event_schema())
        .unwrap()
}

/// What the validator says against `event`, one line per error.
fn errors(validator: &jsonschema::Validator, event: &Value) -> Vec<String> {
    validator
        .iter_errors(event)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

fn recorded(aggregate_type: &str, event: &impl DomainEvent) -> RecordedEvent {
    let org_id = Uuid::now_v7();
    RecordedEvent {
        id: Uuid::now_v7(),
        position: 7,
        transaction_id: 42,
        org_id: Some(org_id),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: Uuid::now_v7().to_string(),
        sequence: 1,
        event_type: event.event_type(),
        version: event.event_version(),
        data: serde_json::to_value(event).unwrap(),
        metadata: serde_json::to_value(CommandContext::system(Some(org_id)).to_metadata()).unwrap(),
    }
}

/// The event as the relay publishes it, cut to `max_bytes`.
fn published(event: &RecordedEvent, max_bytes: usize) -> Value {
    let (_, json) = BusEvent::encode_within(event, max_bytes).unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn agent_created() -> RecordedEvent {
    let definition = AgentDefinition {
        name: "Support".into(),
        model: "echo".into(),
        system_prompt: "Be brief.".into(),
        tools: vec!["search".into()],
        approval: Approval::PerTool(BTreeMap::from([("search".into(), ApprovalMode::Always)])),
        max_steps: 5,
        temperature: Some(0.5),
        max_output_tokens: None,
        approval_timeout_seconds: None,
    };
    let event = AgentEvent::Created {
        org_id: Uuid::now_v7(),
        version: 1,
        definition,
    };
    recorded("agent", &event)
}

fn tool_call_requested() -> RecordedEvent {
    let call = Call {
        call_id: Uuid::now_v7(),
        model_call_id: "call_1".into(),
        name: "search".into(),
        arguments: r#"{"q": "x"}"#.into(),
        approval: ApprovalState::Pending,
        attempts: 0,
        finished: false,
        expires_at: Some(chrono::Utc::now()),
    };
    recorded("run", &RunEvent::ToolCallRequested { id: 4, step: 1, call })
}

fn user_registered() -> RecordedEvent {
    let event = UserEvent::Registered {
        email: EmailAddress::parse("ann@example.com").unwrap(),
        password_hash: PasswordDigest::new("$argon2id$v=19$..."),
    };
    let mut event = recorded("user", &event);
    event.org_id = None;
    event
}

#[test]
fn events_as_the_relay_publishes_them_validate() {
    let validator = validator();
    let session = SessionEvent::Started {
        user_id: Uuid::now_v7(),
        org_id: None,
        token_hash: TokenDigest::new("digest"),
        expires_at: chrono::Utc::now(),
        credential_version: 3,
    };
    let failed = RunEvent::ToolCallFailed {
        id: 9,
        call_id: Uuid::now_v7(),
        failure: ToolFailure {
            code: "timeout".into(),
            detail: "no answer in 10 s".into(),
        },
    };
    for event in [
        agent_created(),
        tool_call_requested(),
        user_registered(),
        recorded("session", &session),
        recorded("run", &failed),
    ] {
        let bus = published(&event, usize::MAX);
        assert_eq!(errors(&validator, &bus), Vec::<String>::new(), "{bus:#}");
    }
}

#[test]
fn a_credential_digest_in_data_is_refused() {
    let event = user_registered();
    let mut bus = published(&event, usize::MAX);
    assert!(validator().is_valid(&bus));

    bus["data"] = event.data.clone();

    assert!(bus["data"]["password_hash"].is_string(), "{bus}");
    assert!(!validator().is_valid(&bus), "a digest must never validate: {bus}");
}

#[test]
fn a_cut_event_validates_without_its_named_fields_and_only_when_it_says_so() {
    let validator = validator();
    let completed = RunEvent::ToolCallCompleted {
        id: 5,
        call_id: Uuid::now_v7(),
        output: "x".repeat(5_000),
    };
    let event = recorded("run", &completed);

    let cut = published(&event, 1_200);

    assert_eq!(cut["truncated_fields"], json!(["output"]), "{cut}");
    assert_eq!(errors(&validator, &cut), Vec::<String>::new(), "{cut:#}");
    let mut unflagged = cut.clone();
    let object = unflagged.as_object_mut().unwrap();
    object.remove("truncated");
    object.remove("truncated_fields");
    assert!(
        !validator.is_valid(&unflagged),
        "a whole event lacking a field is refused"
    );
}

/// A change made to an event as drift would make it.
type Change = fn(&mut Value);

/// The schema can fail: each of these changes to a valid event is refused.
#[test]
fn wrong_payloads_are_refused() {
    let validator = validator();
    let valid = published(&tool_call_requested(), usize::MAX);
    assert!(validator.is_valid(&valid));
    let cases: [(&str, Change); 14] = [
        ("unknown event type", |e| {
            e["type"] = json!("run.exploded");
            e["data"]["type"] = json!("run.exploded");
        }),
        ("data of another type", |e| {
            e["data"]["type"] = json!("run.started")
        }),
        ("a field of the wrong type", |e| e["data"]["step"] = json!("one")),
        ("an unknown field in data", |e| e["data"]["extra"] = json!(1)),
        ("a required field missing", |e| {
            e["data"].as_object_mut().unwrap().remove("call");
        }),
        ("an unknown field in a nested type", |e| {
            e["data"]["call"]["extra"] = json!(true)
        }),
        ("an unknown enum value", |e| {
            e["data"]["call"]["approval"] = json!("maybe")
        }),
        ("another aggregate", |e| e["aggregate_type"] = json!("agent")),
        ("another version", |e| e["version"] = json!("2")),
        ("a numeric transaction id", |e| e["transaction_id"] = json!(42)),
        ("an envelope field too many", |e| e["partition"] = json!(0)),
        ("a malformed actor", |e| e["metadata"]["actor"] = json!("robot:1")),
        ("truncated set to false", |e| e["truncated"] = json!(false)),
        ("truncated fields on a whole event", |e| {
            e["truncated_fields"] = json!(["call"])
        }),
    ];
    for (what, change) in cases {
        let mut event = valid.clone();
        change(&mut event);
        assert!(!validator.is_valid(&event), "{what} was accepted: {event:#}");
    }
}

#[test]
fn only_definitions_in_use_are_kept() {
    let schema = bus_event_schema();
    let defs = schema["$defs"].as_object().unwrap();
    assert!(defs.contains_key("agent.created") && defs.contains_key("cut:agent.created"));
    assert!(defs.contains_key("AgentDefinition") && defs.contains_key("Actor"));
    assert!(
        !defs.contains_key("PasswordDigest") && !defs.contains_key("TokenDigest"),
        "only `*_hash` fields referred to them"
    );
    assert!(
        !schema.to_string().contains("_hash\""),
        "no digest field is described"
    );
}
