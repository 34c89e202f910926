//! Writing and loading aggregates.

mod aggregate_cache;
mod append;
mod coalescing_bus;
mod command_bus;
mod context;
mod decided_with;
mod error;
mod event_store;
mod group_commit;
mod linked_commands;
pub mod restore;
mod standing;
mod storable;
mod upcasters;

pub use append::append_with;
pub use coalescing_bus::CoalescingBus;
pub use command_bus::{CommandBus, CommandError, CommitObserver, Committed};
pub(crate) use context::metadata_schema;
pub use context::{CommandContext, MAX_USER_AGENT_BYTES, RequestOrigin};
pub use decided_with::DecidedWith;
pub use error::StoreError;
pub use event_store::{AppendedEvent, EventStore, NewEvent};
pub use group_commit::DEFAULT_WRITERS as DEFAULT_APPEND_WRITERS;
pub use group_commit::STATEMENT_DEADLINE as APPEND_STATEMENT_DEADLINE;
pub use linked_commands::Linked;
pub use standing::CallerStanding;
pub use storable::MAX_EVENT_BYTES;
pub use upcasters::Upcasters;

/// The append statements by name: all run on the group commit's generic-plan pool.
pub(crate) const GENERIC_PLANNED_APPENDS: [(&str, &str); 6] = [
    ("append", append::APPEND),
    ("append_if_unmoved", append::APPEND_IF_UNMOVED),
    ("append_if_guarded", append::APPEND_IF_GUARDED),
    ("append_group", group_commit::APPEND_GROUP),
    ("append_guarded_group", group_commit::APPEND_GUARDED_GROUP),
    ("append_units", group_commit::APPEND_UNITS),
];
