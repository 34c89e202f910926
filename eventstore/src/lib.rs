//! Agentry's event-store platform: everything between a pure domain decision and the log,
//! and everything that follows the log. It knows no product: identity, runs and billing are
//! application services in `commands`, read models in `projections`.
//!
//! A newcomer's map:
//! - [`store`]: the event store. [`EventStore`] appends a command's events in one round trip
//!   and loads aggregates through the upcasters; [`CommandBus`] runs cqrs-es aggregates over it
//!   with an in-memory aggregate cache and optimistic-concurrency retries.
//! - [`log`]: the follower that reads the whole log in an order that never back-fills
//!   (`(transaction_id, position)` behind the `pg_snapshot_xmin` gate) and the checkpoints of
//!   everything that follows it.
//! - [`relay`]: publishes every committed event exactly once, in log order, to the [`EventBus`]:
//!   NATS JetStream between nodes, or an in-process bus for a single node.
//! - [`database`]: creating, connecting and migrating the database.

pub mod batch;
pub mod database;
pub mod held_connection;
pub mod log;
pub mod plan_check;
pub mod relay;
pub mod store;

pub use log::{AppendSignal, Cursor, LogFollower, RecordedEvent};
pub use relay::{EventBus, Relay};
pub use store::{
    CallerStanding, CommandBus, CommandContext, CommandError, CommitObserver, Committed, DecidedWith,
    EventStore, RequestOrigin, StoreError,
};
