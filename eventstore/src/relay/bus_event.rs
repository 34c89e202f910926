use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RecordedEvent;

/// A committed event as the bus carries it: the event JSON of `docs/events.md`, without
/// credential digests, and possibly cut to fit the broker.
///
/// NATS refuses any message over the server's `max_payload` (1 MiB by default), while an event
/// may hold up to `store::MAX_EVENT_BYTES`. An event that does not fit is published with its
/// largest `data` fields left out, `truncated: true` and their names in `truncated_fields`;
/// a subscriber that needs them reads the event whole by its id (`GET /v1/events/{id}`, or
/// `log::read_event`). Publishing it cut keeps the relay moving for every organization.
///
/// Its JSON Schema, with `data` per event type, is `docs/event.schema.json` (see
/// [`bus_event_schema`](super::bus_event_schema)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BusEvent {
    /// The event; its `data` lacks the fields named in `truncated_fields`.
    #[serde(flatten)]
    pub event: RecordedEvent,
    /// Whether `data` was cut to fit the bus: present, and `true`, only on a cut event.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("const" = true))]
    pub truncated: bool,
    /// The top-level `data` fields left out, largest first; empty, and so absent, when `data`
    /// was not an object (it is then `null`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub truncated_fields: Vec<String>,
}

impl BusEvent {
    /// The whole event, digests removed.
    pub fn complete(event: &RecordedEvent) -> Self {
        Self {
            event: event.without_digests(),
            truncated: false,
            truncated_fields: Vec::new(),
        }
    }

    /// The event as JSON of at most `max_bytes` when cutting `data` can achieve it: whole if it
    /// fits, else without its largest `data` fields, one at a time, until it does.
    ///
    /// Only when even an empty `data` is too large (metadata and ids alone over the limit,
    /// which no writer produces) is the JSON returned over `max_bytes`; the broker refuses it.
    pub fn encode_within(
        event: &RecordedEvent,
        max_bytes: usize,
    ) -> Result<(Self, Vec<u8>), serde_json::Error> {
        let mut bus = Self::complete(event);
        let mut json = serde_json::to_vec(&bus)?;
        if json.len() <= max_bytes {
            return Ok((bus, json));
        }
        bus.truncated = true;
        let Value::Object(fields) = &mut bus.event.data else {
            bus.event.data = Value::Null;
            json = serde_json::to_vec(&bus)?;
            return Ok((bus, json));
        };
        let mut by_size = Vec::with_capacity(fields.len());
        for (name, value) in fields.iter() {
            by_size.push((serde_json::to_vec(value)?.len(), name.clone()));
        }
        by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (_, name) in by_size {
            if let Value::Object(fields) = &mut bus.event.data {
                fields.remove(&name);
            }
            bus.truncated_fields.push(name);
            json = serde_json::to_vec(&bus)?;
            if json.len() <= max_bytes {
                break;
            }
        }
        Ok((bus, json))
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::BusEvent;
    use crate::RecordedEvent;

    fn event(data: Value) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::now_v7(),
            position: 7,
            transaction_id: 42,
            org_id: Some(Uuid::now_v7()),
            aggregate_type: "run".into(),
            aggregate_id: "r".into(),
            sequence: 1,
            event_type: "tool_call.completed".into(),
            version: "1".into(),
            data,
            metadata: json!({ "actor": "system" }),
        }
    }

    #[test]
    fn an_event_that_fits_is_sent_whole_and_unflagged() {
        let event = event(json!({ "type": "t", "output": "small", "key_hash": "d" }));

        let (bus, json) = BusEvent::encode_within(&event, 10_000).unwrap();

        let sent: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(sent["data"], json!({ "type": "t", "output": "small" }));
        assert!(sent.get("truncated").is_none() && sent.get("truncated_fields").is_none());
        assert_eq!(serde_json::from_slice::<BusEvent>(&json).unwrap(), bus);
    }

    #[test]
    fn the_largest_fields_go_first_until_the_event_fits() {
        let event = event(json!({
            "type": "t", "a": "x".repeat(3_000), "b": "y".repeat(2_000), "c": "z".repeat(100)
        }));

        let (bus, json) = BusEvent::encode_within(&event, 1_000).unwrap();

        assert!(json.len() <= 1_000, "{} bytes", json.len());
        assert_eq!(bus.truncated_fields, ["a", "b"]);
        let sent: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(sent["truncated"], true);
        assert_eq!(sent["truncated_fields"], json!(["a", "b"]));
        assert_eq!(sent["data"], json!({ "type": "t", "c": "z".repeat(100) }));
        assert_eq!(sent["transaction_id"], "42");
        assert_eq!(serde_json::from_slice::<BusEvent>(&json).unwrap(), bus);
    }

    #[test]
    fn data_that_is_not_an_object_is_left_out_whole() {
        let event = event(json!("q".repeat(5_000)));

        let (bus, json) = BusEvent::encode_within(&event, 1_000).unwrap();

        assert!(json.len() <= 1_000);
        assert!(bus.truncated && bus.truncated_fields.is_empty());
        assert_eq!(bus.event.data, Value::Null);
    }
}
