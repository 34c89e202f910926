use chrono::{DateTime, Utc};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

use super::append::{AppendKeys, PendingAppend, sequence_to_db};
use super::group_commit::{DEFAULT_WRITERS, GroupCommit, append_grouped, append_linked, group_commit};
use super::upcasters::Upcasters;
use super::{CommandContext, DecidedWith, StoreError};
use crate::log::{AppendSignal, LogTail};

const LOAD: &str = "
SELECT sequence, event_type, event_version, payload
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
 ORDER BY sequence";

/// [`LOAD`] from the start, with each event's recording time.
const LOAD_WITH_TIMES: &str = "
SELECT sequence, event_type, event_version, payload, metadata ->> 'recorded_at'
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2
 ORDER BY sequence";

/// An event ready to be appended: the domain event already in its stored form.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The stable identity the relay and consumers deduplicate by.
    pub event_id: Uuid,
    /// The dotted event type (`organization.created`).
    pub event_type: String,
    /// The payload's schema version, for upcasting.
    pub event_version: String,
    /// The payload as JSON text.
    pub payload: String,
}

impl NewEvent {
    /// Serializes a domain event, giving it a fresh time-ordered id.
    pub fn from_domain<E: DomainEvent>(event: &E) -> Result<Self, StoreError> {
        let payload = serde_json::to_string(event).map_err(|source| StoreError::Serialization {
            event_type: event.event_type(),
            event_version: event.event_version(),
            source,
        })?;
        Ok(Self {
            event_id: Uuid::now_v7(),
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload,
        })
    }
}

/// Where an appended event landed: callers can wait for read models to pass `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendedEvent {
    /// The event's stable id.
    pub event_id: Uuid,
    /// Its sequence number within the aggregate (1-based).
    pub sequence: i64,
    /// Its global position (taken at insert time, not commit time).
    pub position: i64,
    /// The writing transaction, the first half of the log cursor.
    pub transaction_id: u64,
}

impl AppendedEvent {
    /// Its place in the log, for waiting until a read model has passed it.
    pub fn cursor(&self) -> crate::Cursor {
        crate::Cursor {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}

/// Whether each `(aggregate type, aggregate id, sequence)` given has an event, in order.
const FIRST_SEQUENCES_TAKEN: &str = "
    SELECT EXISTS (SELECT 1 FROM events e
                    WHERE e.aggregate_type = a.aggregate_type AND e.aggregate_id = a.aggregate_id
                      AND e.sequence = a.sequence)
      FROM UNNEST($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY
           AS a(aggregate_type, aggregate_id, sequence, n)
     ORDER BY a.n";

/// The Postgres event store: appends with optimistic concurrency and loads through upcasters.
///
/// Cloning is cheap; every clone shares the pool, the upcasters, the append signal, the
/// group commit (appends waiting at the same moment share a statement: `group_commit.rs`) and
/// the log's tail (the followers of the process share their reads: `log/tail.rs`).
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    upcasters: Upcasters,
    signal: AppendSignal,
    group: Arc<GroupCommit>,
    tail: LogTail,
}

impl EventStore {
    /// A store over `pool`; `upcasters` turn old payload versions into the current shape on load.
    pub fn new(pool: PgPool, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        let upcasters = Upcasters::new(upcasters);
        Self {
            group: group_commit(&pool, DEFAULT_WRITERS),
            tail: LogTail::new(pool.clone(), upcasters.clone()),
            pool,
            upcasters,
            signal: AppendSignal::default(),
        }
    }

    /// The same store with at most `writers` append statements in flight at once (default
    /// [`DEFAULT_WRITERS`](super::DEFAULT_APPEND_WRITERS), plus one for a busy account's
    /// batch: see `group_commit.rs`); appends beyond them wait and go together. Benchmarks
    /// compare settings with it.
    pub fn with_append_writers(mut self, writers: usize) -> Self {
        self.group = group_commit(&self.pool, writers);
        self
    }

    /// The pool, for read models and followers that share the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The upcasters it loads through, for followers of the same log (one list for every reader).
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// The log's latest events as this process's followers read them (`LogFollower` reads
    /// through it).
    pub fn tail(&self) -> &LogTail {
        &self.tail
    }

    /// Fires after every append through this store, so followers in this process wake at once
    /// instead of waiting for their next poll.
    pub fn signal(&self) -> &AppendSignal {
        &self.signal
    }

    /// Appends `events` after `expected_version` in one round trip, or fails with
    /// [`StoreError::Conflict`] when another writer got there first, with
    /// [`StoreError::EventTooLarge`] or [`StoreError::UnstorableText`] when an event could never
    /// be handled (nothing of the command is written then).
    pub async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: usize,
        events: &[NewEvent],
        context: &CommandContext,
    ) -> Result<Vec<AppendedEvent>, StoreError> {
        let commands = [(events, context)];
        self.append_commands(aggregate_type, aggregate_id, expected_version, &commands, None)
            .await?
            .ok_or_else(|| {
                // Without a condition the insert writes every row or fails; no rows is not an outcome.
                StoreError::Unexpected(format!(
                    "the append to {aggregate_type}/{aggregate_id} wrote nothing"
                ))
            })
    }

    /// [`append`](Self::append) that commits only while the aggregate `decided_with` names has
    /// not moved past the version the decision saw, and the caller's standing it may carry is
    /// unchanged; `Ok(None)` when either is not so, and nothing was written.
    pub async fn append_if_unmoved(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: usize,
        events: &[NewEvent],
        context: &CommandContext,
        decided_with: &DecidedWith,
    ) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
        let commands = [(events, context)];
        self.append_commands(
            aggregate_type,
            aggregate_id,
            expected_version,
            &commands,
            Some(decided_with),
        )
        .await
    }

    /// The events of several commands on one aggregate, decided one after another, appended
    /// together in one round trip (each event with its own command's metadata), under
    /// `decided_with` if given: all are written or none.
    pub async fn append_commands(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: usize,
        commands: &[(&[NewEvent], &CommandContext)],
        decided_with: Option<&DecidedWith>,
    ) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
        let mut append =
            PendingAppend::of_commands(aggregate_type, aggregate_id, expected_version, commands)?;
        append.decided_with = decided_with.cloned();
        let appended = append_grouped(&self.group, append).await?;
        if appended.is_some() {
            self.signal.notify();
        }
        Ok(appended)
    }

    /// Appends of different aggregates committed in one statement, all or none (grouped with
    /// other appends waiting at the same moment): each append's events, or `None` when any
    /// append's condition failed and nothing was written.
    pub(crate) async fn append_linked(
        &self,
        appends: Vec<PendingAppend>,
    ) -> Result<Option<Vec<Vec<AppendedEvent>>>, StoreError> {
        let appended = append_linked(&self.group, appends).await?;
        if appended.is_some() {
            self.signal.notify();
        }
        Ok(appended)
    }

    /// For each append, whether its first sequence is taken now: which of a linked set that
    /// wrote nothing had lost its race.
    pub(crate) async fn first_sequences_taken(
        &self,
        appends: &[&PendingAppend],
    ) -> Result<Vec<bool>, StoreError> {
        let keys = AppendKeys::of(appends.iter().copied());
        let rows: Vec<(bool,)> = sqlx::query_as(FIRST_SEQUENCES_TAKEN)
            .bind(keys.aggregate_types)
            .bind(keys.aggregate_ids)
            .bind(keys.first_sequences)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(taken,)| taken).collect())
    }

    /// Loads the events of one aggregate after `after_sequence`, upcast to the current shape,
    /// each with its sequence number.
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after_sequence: usize,
    ) -> Result<Vec<(usize, A::Event)>, StoreError> {
        let rows: Vec<(i64, String, String, Value)> = sqlx::query_as(LOAD)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(sequence_to_db(after_sequence))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(sequence, event_type, event_version, payload)| {
                self.decode_row::<A>(aggregate_id, sequence, event_type, event_version, payload)
            })
            .collect()
    }

    /// The events of one aggregate as it stood at `until`: those recorded at or before it, in
    /// sequence order, up to the first one recorded later (an aggregate's state is the fold of
    /// a prefix of its events; clocks of two nodes may disagree by a little, so a later
    /// sequence never sneaks in before an earlier one). Empty when it did not exist yet.
    pub async fn load_until<A: Aggregate>(
        &self,
        aggregate_id: &str,
        until: DateTime<Utc>,
    ) -> Result<Vec<(usize, A::Event)>, StoreError> {
        let rows: Vec<(i64, String, String, Value, Option<String>)> = sqlx::query_as(LOAD_WITH_TIMES)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .take_while(|(.., recorded_at)| {
                recorded_at
                    .as_deref()
                    .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                    .is_some_and(|recorded_at| recorded_at <= until)
            })
            .map(|(sequence, event_type, event_version, payload, _)| {
                self.decode_row::<A>(aggregate_id, sequence, event_type, event_version, payload)
            })
            .collect()
    }

    fn decode_row<A: Aggregate>(
        &self,
        aggregate_id: &str,
        sequence: i64,
        event_type: String,
        event_version: String,
        payload: Value,
    ) -> Result<(usize, A::Event), StoreError> {
        // The column is CHECKed to be at least 1, so this never falls back.
        let sequence = usize::try_from(sequence).unwrap_or_default();
        let stored = SerializedEvent::new(
            aggregate_id.to_owned(),
            sequence,
            A::TYPE.to_owned(),
            event_type,
            event_version,
            payload,
            Value::Null,
        );
        Ok((sequence, self.decode::<A>(stored)?))
    }

    fn decode<A: Aggregate>(&self, stored: SerializedEvent) -> Result<A::Event, StoreError> {
        let current = self.upcasters.upcast(stored);
        serde_json::from_value(current.payload).map_err(|source| StoreError::Serialization {
            event_type: current.event_type,
            event_version: current.event_version,
            source,
        })
    }
}
