//! Carrying committed events from the log to the bus, exactly once and in log order.

mod bus;
mod bus_event;
mod bus_schema;
mod leader;
mod local_bus;
mod nats_bus;
mod relay_loop;
mod subject;
mod subscription;

pub use bus::{BusError, EventBus, PendingAcks, Publisher};
pub use bus_event::BusEvent;
pub use bus_schema::{EVENT_SCHEMA_PATH, bus_event_schema, bus_event_schema_text};
pub use local_bus::LocalBus;
pub use nats_bus::{EPOCH_HEADER, NatsBus, STREAM_NAME, STREAM_SUBJECTS};
pub use relay_loop::{RELAY_NAME, Relay};
pub use subject::subject_for;
pub use subscription::{EventFilter, EventSubscription, SubscriptionError};
