//! The one list of upcasters, shared by the store (loading aggregates) and the log follower
//! (the relay, the projectors, the event route), so every reader sees current shapes.

use std::fmt;
use std::sync::Arc;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

use crate::RecordedEvent;

/// The domain's upcasters, applied in order; cloning shares them.
#[derive(Clone)]
pub struct Upcasters(Arc<Vec<Box<dyn EventUpcaster>>>);

impl Upcasters {
    /// Wraps the domain's list (`domain::upcasting::upcasters()`).
    pub fn new(upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self(Arc::new(upcasters))
    }

    /// `stored` in the current shape: every upcaster that applies, in order.
    pub fn upcast(&self, stored: SerializedEvent) -> SerializedEvent {
        self.0.iter().fold(stored, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        })
    }

    /// A followed event in the current shape: its `data` lifted and its `version` the current
    /// one. Events already current (nearly all) are returned as they are, without copying.
    pub fn upcast_recorded(&self, mut event: RecordedEvent) -> RecordedEvent {
        if !self
            .0
            .iter()
            .any(|upcaster| upcaster.can_upcast(&event.event_type, &event.version))
        {
            return event;
        }
        let stored = SerializedEvent::new(
            std::mem::take(&mut event.aggregate_id),
            usize::try_from(event.sequence).unwrap_or_default(),
            std::mem::take(&mut event.aggregate_type),
            std::mem::take(&mut event.event_type),
            std::mem::take(&mut event.version),
            std::mem::replace(&mut event.data, Value::Null),
            Value::Null,
        );
        let current = self.upcast(stored);
        event.aggregate_id = current.aggregate_id;
        event.aggregate_type = current.aggregate_type;
        event.event_type = current.event_type;
        event.version = current.event_version;
        event.data = current.payload;
        event
    }
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Upcasters({})", self.0.len())
    }
}
