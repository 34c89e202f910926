//! Events for the crate's unit tests, built in one place: each test states only the fields its
//! case depends on.

use eventstore::RecordedEvent;
use serde_json::json;
use uuid::Uuid;

/// A recorded event of `aggregate_type` and `event_type`: the first of a new aggregate, first
/// in the log, with empty payload and metadata. Override fields with struct update syntax.
pub(crate) fn recorded(aggregate_type: &str, event_type: &str) -> RecordedEvent {
    RecordedEvent {
        id: Uuid::now_v7(),
        position: 1,
        transaction_id: 1,
        org_id: None,
        aggregate_type: aggregate_type.into(),
        aggregate_id: Uuid::now_v7().to_string(),
        sequence: 1,
        event_type: event_type.into(),
        version: "1".into(),
        data: json!({}),
        metadata: json!({}),
    }
}
