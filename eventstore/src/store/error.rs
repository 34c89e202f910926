use thiserror::Error;

/// Why the event store could not do what was asked.
///
/// `Conflict` is the only expected failure: it means another writer appended to the same
/// aggregate first, and the caller should reload and decide again.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer appended to this aggregate since it was loaded.
    #[error("aggregate {aggregate_type}/{aggregate_id} was changed concurrently")]
    Conflict {
        /// The aggregate's type.
        aggregate_type: String,
        /// The aggregate's id.
        aggregate_id: String,
    },
    /// A payload did not (de)serialize: a bug or an event with no upcaster for its version.
    #[error("event {event_type} v{event_version} could not be (de)serialized: {source}")]
    Serialization {
        /// The stored event type.
        event_type: String,
        /// The stored event version.
        event_version: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// An aggregate's stored sequence skipped or repeated a number: the cache and the store
    /// disagree, and nothing may be decided on that state.
    #[error("aggregate {aggregate_type}/{aggregate_id}: expected sequence {expected}, found {found}")]
    SequenceGap {
        /// The aggregate's type.
        aggregate_type: String,
        /// The aggregate's id.
        aggregate_id: String,
        /// The sequence that should have come next.
        expected: usize,
        /// The sequence that did.
        found: usize,
    },
    /// An event larger than [`MAX_EVENT_BYTES`](super::MAX_EVENT_BYTES) (payload and
    /// metadata together): nothing of the command was written.
    #[error("event {event_type} is {bytes} bytes; the store accepts at most {limit} bytes per event")]
    EventTooLarge {
        /// The refused event's type.
        event_type: String,
        /// Its payload and metadata, in bytes of JSON.
        bytes: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Text the read side can never hold: U+0000 anywhere (Postgres `json` accepts it, `text`
    /// and `jsonb` refuse it, so a projector could never store the event). Nothing was written.
    #[error("event {event_type} has a NUL character (U+0000) in its {field}, which cannot be stored")]
    UnstorableText {
        /// The refused event's type.
        event_type: String,
        /// Where the NUL is: `payload`, `metadata`, `event_type`, `event_version` or `aggregate_id`.
        field: String,
    },
    /// The database answered something the store cannot read (a transaction id that is not a
    /// number): never papered over, since a wrong cursor would skip or repeat events.
    #[error("unexpected value from the event store: {0}")]
    Unexpected(String),
    /// An append's connection was lost after its statement may have reached the server, with
    /// no word from it ([`database::outcome_unknown`](crate::database::outcome_unknown), or no
    /// answer within the appends' deadline): it may have been committed, or not. Never sent
    /// again (its rows would be found taken and answered "not written"). Only the group
    /// commit's appends answer it (every append of the service), so a read, or a failure to
    /// connect, is never taken for one; `append_with`, on a caller's executor, answers the
    /// database's error as it is.
    #[error("whether the append was written is unknown: {0}")]
    OutcomeUnknown(String),
    /// The database failed or could not be reached.
    #[error("event store database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// The same failure for another caller that shared the attempt (the database error is not
    /// `Clone`): what callers tell apart (a conflict, a busy pool, a refused event, an unknown
    /// outcome) is kept, and so are an I/O or protocol error (for the log, which names them
    /// better than a message); any other failure becomes its message.
    pub fn lossy_copy(&self) -> Self {
        match self {
            Self::Conflict {
                aggregate_type,
                aggregate_id,
            } => Self::Conflict {
                aggregate_type: aggregate_type.clone(),
                aggregate_id: aggregate_id.clone(),
            },
            Self::OutcomeUnknown(text) => Self::OutcomeUnknown(text.clone()),
            Self::Database(sqlx::Error::PoolTimedOut) => Self::Database(sqlx::Error::PoolTimedOut),
            Self::Database(sqlx::Error::PoolClosed) => Self::Database(sqlx::Error::PoolClosed),
            Self::Database(sqlx::Error::Io(error)) => Self::Database(sqlx::Error::Io(std::io::Error::new(
                error.kind(),
                error.to_string(),
            ))),
            Self::Database(sqlx::Error::Protocol(message)) => {
                Self::Database(sqlx::Error::Protocol(message.clone()))
            }
            Self::EventTooLarge {
                event_type,
                bytes,
                limit,
            } => Self::EventTooLarge {
                event_type: event_type.clone(),
                bytes: *bytes,
                limit: *limit,
            },
            Self::UnstorableText { event_type, field } => Self::UnstorableText {
                event_type: event_type.clone(),
                field: field.clone(),
            },
            Self::SequenceGap {
                aggregate_type,
                aggregate_id,
                expected,
                found,
            } => Self::SequenceGap {
                aggregate_type: aggregate_type.clone(),
                aggregate_id: aggregate_id.clone(),
                expected: *expected,
                found: *found,
            },
            other => Self::Unexpected(other.to_string()),
        }
    }

    /// Turns a database error into `Conflict` when it is the events table's primary key
    /// (the optimistic-concurrency guard), and nothing else: another unique violation is a bug,
    /// not a race, and must not be retried as one.
    pub(crate) fn from_append(error: sqlx::Error, aggregate_type: &str, aggregate_id: &str) -> Self {
        let is_conflict = error.as_database_error().is_some_and(|db| {
            db.code().as_deref() == Some("23505") && db.constraint() == Some("events_pkey")
        });
        if is_conflict {
            Self::Conflict {
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
            }
        } else {
            Self::Database(error)
        }
    }
}
