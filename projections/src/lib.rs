//! Agentry's read side: projectors that fold the event log into query tables.
//!
//! Every projector runs under a [`ProjectionRunner`], which reads the log with the same
//! never-back-filling follower as the relay and commits each batch's rows together with the
//! projector's checkpoint. A crash between the two is impossible, a replay is harmless, and two
//! runners on two nodes cannot both apply a batch (the checkpoint moves by compare-and-set).

pub mod audit;
pub mod conversations;
mod decode;
mod grouped;
pub mod identity;
mod projector;
pub mod rebuild;
mod runner;
pub mod runs;
#[cfg(test)]
mod test_events;
pub mod usage;

pub use audit::{AUDIT, AuditProjector};
pub use conversations::{CONVERSATIONS, ConversationsProjector};
pub use identity::{IDENTITY, IdentityProjector};
pub use projector::{BatchProjector, PACE, Projector};
pub use runner::ProjectionRunner;
pub use runs::{RUN_HISTORY, RunHistoryProjector};
pub use usage::{USAGE, UsageProjector};
