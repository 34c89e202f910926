//! `docs/event.schema.json`: the JSON Schema (draft 2020-12) of an event as the bus carries it,
//! generated from [`BusEvent`] and the domain's event enums so that it cannot drift from what
//! the relay publishes. The test below fails when the file is out of date; to rewrite it:
//! `cargo test -p eventstore --lib write_event_schema -- --ignored`.
//!
//! The envelope comes from `BusEvent` (and `RecordedEvent`, which it flattens), `metadata` from
//! `CommandContext`'s writer, and `data` from each event enum (`domain::event_schema`), with the
//! relay's own rules applied on top: credential digests (`*_hash`) are left out, and a cut event
//! (`truncated`) may lack any of its fields. Every object is closed (`additionalProperties:
//! false`): the Rust types serialize exactly their fields, so anything else is drift.

use std::collections::BTreeSet;

use domain::event_schema::{EventSchema, event_schemas};
use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::BusEvent;

/// Where the published schema lives, relative to the workspace.
pub const EVENT_SCHEMA_PATH: &str = "docs/event.schema.json";

/// How the file says it is generated.
const GENERATED: &str = "Generated from the Rust types (eventstore/src/relay/bus_schema.rs); do not edit by hand. \
     Rewrite with `cargo test -p eventstore --lib write_event_schema -- --ignored`.";

/// The schema of every event the bus carries, as JSON.
pub fn bus_event_schema() -> Value {
    serde_json::to_value(published_schema()).unwrap_or_default()
}

/// The text of `docs/event.schema.json`: the schema, pretty-printed, with the envelope first
/// and the shared definitions last, so it reads top-down.
pub fn bus_event_schema_text() -> String {
    let text = serde_json::to_string_pretty(&published_schema()).unwrap_or_default();
    text + "\n"
}

/// The top-level keywords in reading order (a `serde_json::Map` would sort them).
#[derive(Serialize)]
struct Document {
    #[serde(rename = "$schema")]
    schema: Value,
    #[serde(rename = "$comment")]
    comment: &'static str,
    title: &'static str,
    description: &'static str,
    #[serde(rename = "type")]
    kind: Value,
    properties: Value,
    required: Value,
    #[serde(rename = "additionalProperties")]
    additional_properties: Value,
    #[serde(rename = "dependentRequired")]
    dependent_required: Value,
    #[serde(rename = "allOf")]
    all_of: Vec<Value>,
    #[serde(rename = "$defs")]
    defs: Map<String, Value>,
}

fn published_schema() -> Document {
    let mut generator = SchemaSettings::draft2020_12()
        .with_transform(RecursiveTransform(close_object))
        .into_generator();
    let events = event_schemas(&mut generator);
    let mut envelope = generator.root_schema_for::<BusEvent>().to_value();
    let mut take = |keyword: &str| envelope.get_mut(keyword).map(Value::take).unwrap_or_default();

    let mut properties = take("properties");
    properties["type"]["enum"] = events.iter().map(|event| json!(event.event_type)).collect();
    let mut defs = match take("$defs") {
        Value::Object(defs) => defs,
        _ => Map::new(),
    };
    let mut all_of = Vec::with_capacity(events.len());
    for event in events {
        all_of.push(per_type_rules(&event));
        let data = without_digests(event.data);
        defs.insert(cut_name(&event.event_type), cut(&event.event_type, &data));
        defs.insert(event.event_type, data.to_value());
    }
    let mut document = Document {
        schema: take("$schema"),
        comment: GENERATED,
        title: "Agentry event (NATS)",
        description: "One committed event as the relay publishes it to JetStream on \
             `agentry.<org_id>.events.<aggregate_type>.<aggregate_id>`: see docs/events.md.",
        kind: take("type"),
        properties,
        required: take("required"),
        additional_properties: take("additionalProperties"),
        dependent_required: json!({ "truncated_fields": ["truncated"] }),
        all_of,
        defs,
    };
    prune_unreferenced(&mut document);
    document
}

/// `additionalProperties: false` on every object schema that lists its properties and says
/// nothing of others (maps already say what their values are).
fn close_object(schema: &mut Schema) {
    if schema.get("properties").is_some() && schema.get("additionalProperties").is_none() {
        schema.insert("additionalProperties".into(), false.into());
    }
}

/// What follows from an event's `type`: its aggregate, its current version and its `data`,
/// whole, or on a cut event with any of its fields left out.
fn per_type_rules(event: &EventSchema) -> Value {
    json!({
        "if": { "properties": { "type": { "const": event.event_type } } },
        "then": {
            "properties": {
                "aggregate_type": { "const": event.aggregate_type },
                "version": { "const": event.version }
            },
            "if": { "required": ["truncated"] },
            "then": {
                "properties": { "data": { "$ref": format!("#/$defs/{}", cut_name(&event.event_type)) } }
            },
            "else": {
                "properties": { "data": { "$ref": format!("#/$defs/{}", event.event_type) } }
            }
        }
    })
}

/// The payload as it leaves the store: every field named `*_hash` removed, as
/// `RecordedEvent::without_digests` removes it.
fn without_digests(mut data: Schema) -> Schema {
    if let Some(Value::Object(fields)) = data.get_mut("properties") {
        fields.retain(|name, _| !name.ends_with("_hash"));
    }
    if let Some(Value::Array(required)) = data.get_mut("required") {
        required.retain(|name| !name.as_str().is_some_and(|name| name.ends_with("_hash")));
    }
    data
}

fn cut_name(event_type: &str) -> String {
    format!("cut:{event_type}")
}

/// `data` of a cut event of this type: the same fields, each as the whole event has it, none
/// required.
fn cut(event_type: &str, data: &Schema) -> Value {
    let fields: Map<String, Value> = data
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, _)| {
            let pointer = format!("#/$defs/{event_type}/properties/{name}");
            (name.clone(), json!({ "$ref": pointer }))
        })
        .collect();
    json!({
        "description": format!("`{event_type}` on a cut event: any field may be left out (named in `truncated_fields`)."),
        "type": "object",
        "properties": fields,
        "additionalProperties": false
    })
}

/// Drops the definitions nothing refers to any more (the digest types, once `*_hash` fields
/// are gone).
fn prune_unreferenced(document: &mut Document) {
    let mut reachable = BTreeSet::new();
    let mut pending = Vec::new();
    collect_refs(&document.properties, &mut pending);
    for rule in &document.all_of {
        collect_refs(rule, &mut pending);
    }
    while let Some(name) = pending.pop() {
        if reachable.insert(name.clone())
            && let Some(definition) = document.defs.get(&name)
        {
            collect_refs(definition, &mut pending);
        }
    }
    document.defs.retain(|name, _| reachable.contains(name));
}

/// The definition names of every `#/$defs/<name>[/…]` reference in `schema`.
fn collect_refs(schema: &Value, names: &mut Vec<String>) {
    match schema {
        Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => {
                        if let Some(path) = reference.strip_prefix("#/$defs/") {
                            names.push(path.split('/').next().unwrap_or(path).to_owned());
                        }
                    }
                    _ => collect_refs(value, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, names)),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
