use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Cursor;

/// A committed event as every follower sees it, and as it is published on the bus.
///
/// This is the documented event JSON of `docs/events.md`: external NATS subscribers receive
/// exactly this serialization (without credential digests, and cut when too large: see
/// `relay::BusEvent`). It deserializes from the same JSON, for bus subscribers. Its JSON Schema
/// is part of `docs/event.schema.json` (see `relay::bus_schema`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = org_id_always_present)]
pub struct RecordedEvent {
    /// Stable identity: the JetStream message id, and what consumers deduplicate by.
    pub id: Uuid,
    /// Global position (insert order).
    pub position: i64,
    /// The writing transaction; with `position`, the log cursor.
    #[serde(serialize_with = "as_string", deserialize_with = "from_string")]
    #[schemars(with = "String", regex(pattern = "^[0-9]+$"))]
    pub transaction_id: u64,
    /// The tenant; `null` for platform-wide facts.
    pub org_id: Option<Uuid>,
    /// Aggregate type, e.g. `organization`.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate.
    #[schemars(range(min = 1))]
    pub sequence: i64,
    /// Dotted event type, e.g. `organization.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload schema version: the current one once the follower has upcast it.
    pub version: String,
    /// The payload, in the shape of `version`.
    pub data: Value,
    /// Actor, request id, correlation and causation ids, impersonator, recorded-at time.
    #[schemars(schema_with = "crate::store::metadata_schema")]
    pub metadata: Value,
}

impl RecordedEvent {
    /// This event's place in the log.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }

    /// Seconds from its recording to `now` (never negative), for the lag every follower
    /// reports; `None` when the metadata has no recording time.
    pub fn age_seconds(&self, now: DateTime<Utc>) -> Option<f64> {
        let micros = (now - self.recorded_at()?).num_microseconds().unwrap_or(0).max(0);
        Some(micros as f64 / 1e6)
    }

    /// When the writer recorded it (stamped just before the append), if the metadata says.
    pub fn recorded_at(&self) -> Option<DateTime<Utc>> {
        let text = self.metadata.get("recorded_at")?.as_str()?;
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }
}

impl RecordedEvent {
    /// This event as it may leave the store (on the bus, over HTTP): every credential digest in
    /// `data` (any field named `*_hash`, such as `password_hash` or `key_hash`) left out.
    /// Digests stay in the store, where the aggregates need them; nobody outside receives
    /// anything to crack.
    pub fn without_digests(&self) -> Self {
        let mut event = self.clone();
        if let Value::Object(fields) = &mut event.data {
            fields.retain(|name, _| !name.ends_with("_hash"));
        }
        event
    }
}

/// Reads a transaction id as Postgres prints an `xid8` (decimal text). Anything else is an
/// error, never 0: a cursor at 0 would make a follower read the whole log again.
pub(crate) fn parse_transaction_id(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|error| format!("transaction id {text:?} is not a number: {error}"))
}

/// `org_id` is written even when it is `null`, so the schema requires it. (schemars leaves an
/// `Option` optional, and its `required` attribute would also forbid `null`.)
fn org_id_always_present(schema: &mut schemars::Schema) {
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.push("org_id".into());
    }
}

fn as_string<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn from_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_transaction_id(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::RecordedEvent;
    use crate::relay::BusEvent;

    #[test]
    fn credential_digests_never_reach_the_bus() {
        let event = RecordedEvent {
            id: Uuid::now_v7(),
            position: 7,
            transaction_id: 42,
            org_id: None,
            aggregate_type: "user".into(),
            aggregate_id: "u".into(),
            sequence: 1,
            event_type: "user.registered".into(),
            version: "1".into(),
            data: json!({ "type": "user.registered", "email": "a@b.co", "password_hash": "$argon2id$..." }),
            metadata: json!({ "actor": "system" }),
        };

        let (_, json) = BusEvent::encode_within(&event, usize::MAX).unwrap();
        let published: Value = serde_json::from_slice(&json).unwrap();

        assert_eq!(
            published["data"],
            json!({ "type": "user.registered", "email": "a@b.co" })
        );
        assert_eq!(published["transaction_id"], "42");
        assert_eq!(published["type"], "user.registered");
    }
}
