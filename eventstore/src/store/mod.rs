//! Writing and loading aggregates.

mod aggregate_cache;
mod command_bus;
mod context;
mod error;
mod event_store;
pub mod restore;
mod storable;
mod upcasters;

pub use command_bus::{CommandBus, CommandError, CommitObserver, Committed};
pub use context::{CommandContext, MAX_USER_AGENT_BYTES, RequestOrigin};
pub use error::StoreError;
pub use event_store::{AppendedEvent, EventStore, NewEvent, append_with};
pub use storable::MAX_EVENT_BYTES;
pub use upcasters::Upcasters;
