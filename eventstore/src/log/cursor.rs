use serde::{Deserialize, Serialize};

/// A place in the log: the writer's transaction id and the event's position.
///
/// Both halves are needed: a cursor on the position alone can still skip an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// `pg_current_xact_id()` of the writing transaction (an `xid8`, which never wraps).
    pub transaction_id: u64,
    /// The event's global position.
    pub position: i64,
}

impl Cursor {
    /// The start of the log.
    pub const START: Self = Self {
        transaction_id: 0,
        position: 0,
    };
}
