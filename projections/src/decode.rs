//! Reading the fields of a folded event, where a malformed event is an error, not a skip.
//!
//! A malformed event comes back as [`sqlx::Error::Decode`], which fails the runner's whole
//! batch: the runner logs it and retries from the unchanged checkpoint. The projector thus
//! stalls, visibly (lag metric, warnings naming the event), until a release reads the shape.
//! Skipping instead would move the checkpoint past the event for good and leave the read model
//! silently disagreeing with the log: a password change or a key revocation that never lands.

use chrono::{DateTime, Utc};
use eventstore::RecordedEvent;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A folded event whose payload or metadata does not have the shape the projector reads.
#[derive(Debug, thiserror::Error)]
#[error("projector cannot read {event_type} (version {version}) event {event_id}: {reason}")]
struct MalformedEvent {
    event_id: Uuid,
    event_type: String,
    version: String,
    reason: String,
}

/// The error for `event`, saying what is wrong with it.
fn malformed(event: &RecordedEvent, reason: impl ToString) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(MalformedEvent {
        event_id: event.id,
        event_type: event.event_type.clone(),
        version: event.version.clone(),
        reason: reason.to_string(),
    }))
}

/// The event's payload (already in its current shape: the follower upcasts) as the domain
/// event enum `T`.
pub(crate) fn payload<T: DeserializeOwned>(event: &RecordedEvent) -> Result<T, sqlx::Error> {
    T::deserialize(&event.data).map_err(|error| malformed(event, error))
}

/// The aggregate id, a UUID for every aggregate a projector folds.
pub(crate) fn aggregate_uuid(event: &RecordedEvent) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(&event.aggregate_id)
        .map_err(|error| malformed(event, format_args!("aggregate id is not a UUID: {error}")))
}

/// When the event was recorded: the time of registrations, creations and revocations.
pub(crate) fn recorded_at(event: &RecordedEvent) -> Result<DateTime<Utc>, sqlx::Error> {
    event
        .recorded_at()
        .ok_or_else(|| malformed(event, "metadata has no RFC 3339 `recorded_at`"))
}
