//! Following the event log in committed order.
//!
//! Positions are taken when a row is inserted, not when its transaction commits, so a reader
//! that follows `position > last_seen` can skip an event whose transaction commits late. The
//! follower reads only rows of transactions older than every transaction still running
//! (`pg_snapshot_xmin`), ordered by `(transaction_id, position)`: nothing can ever appear
//! behind its cursor. Details and sources: `docs/event-store.md`.

mod checkpoint;
mod cursor;
mod follower;
mod gate;
mod lag;
mod lease;
mod progress;
mod read_event;
mod recorded_event;
mod signal;
mod stall;
mod tail;

pub use checkpoint::{load_checkpoint, save_checkpoint, save_checkpoint_announced, save_checkpoint_as};
pub use cursor::Cursor;
pub(crate) use follower::READ_AFTER;
pub use follower::{
    EVENT_COLUMNS, LogFollower, Row as EventRow, into_event, read_after_with, whole_transactions,
};
pub use gate::{gate_age_seconds, watch_gate};
pub use lag::{COUNT_EXACTLY_UP_TO, FollowerLag, follower_lags};
pub use lease::{LEASE_RENEW_EVERY, LEASE_TTL, Lease, LeaseClaim, LeaseTimings};
pub use progress::{FollowerProgress, RECHECK, announce_progress, log_head};
pub use read_event::read_event;
pub use recorded_event::RecordedEvent;
pub(crate) use recorded_event::parse_transaction_id;
pub use signal::AppendSignal;
pub use stall::{
    BLOCKED_AFTER_ATTEMPTS, FollowerFault, blocked_followers, record_fault, stall_seconds, watch_stalls,
};
pub use tail::LogTail;
