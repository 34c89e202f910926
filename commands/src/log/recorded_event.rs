use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::Cursor;

/// A committed event as every follower sees it, and as it is published on the bus.
///
/// This is the documented event JSON of `docs/events.md`: external NATS subscribers receive
/// exactly this serialization.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedEvent {
    /// Stable identity: the JetStream message id, and what consumers deduplicate by.
    pub id: Uuid,
    /// Global position (insert order).
    pub position: i64,
    /// The writing transaction; with `position`, the log cursor.
    #[serde(serialize_with = "as_string")]
    pub transaction_id: u64,
    /// The tenant, absent for platform-wide facts.
    pub org_id: Option<Uuid>,
    /// Aggregate type, e.g. `organization`.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate.
    pub sequence: i64,
    /// Dotted event type, e.g. `organization.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload schema version as written.
    pub version: String,
    /// The payload as written.
    pub data: Value,
    /// Actor, request id, correlation and causation ids, impersonator, recorded-at time.
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

    /// When the writer recorded it (stamped just before the append), if the metadata says.
    pub fn recorded_at(&self) -> Option<DateTime<Utc>> {
        let text = self.metadata.get("recorded_at")?.as_str()?;
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }
}

fn as_string<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}
