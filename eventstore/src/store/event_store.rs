use chrono::{DateTime, Utc};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::storable::check_storable;
use super::upcasters::Upcasters;
use super::{CommandContext, DecidedWith, StoreError};
use crate::log::{AppendSignal, parse_transaction_id};

/// One round trip for all the events of a command, whatever their number: the rows travel
/// as arrays and the command's metadata once. `WITH ORDINALITY … ORDER BY` makes the rows reach
/// the insert in the order given, so positions (taken at insert) follow sequences; without it
/// that order would only be what today's plan happens to produce.
const APPEND: &str = "
INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT e.event_id, $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, $3::json
  FROM UNNEST($4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
       AS e(event_id, sequence, event_type, event_version, payload, n)
 ORDER BY e.n
RETURNING event_id, sequence, position, transaction_id::text";

/// [`APPEND`] that inserts nothing when the aggregate `$9`/`$10` has an event after `$11`: the
/// other aggregate a decision rested on moved (see [`DecidedWith`]). One probe of the primary key.
const APPEND_IF_UNMOVED: &str = "
INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT e.event_id, $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, $3::json
  FROM UNNEST($4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
       AS e(event_id, sequence, event_type, event_version, payload, n)
 WHERE NOT EXISTS (SELECT 1 FROM events g
                    WHERE g.aggregate_type = $9 AND g.aggregate_id = $10 AND g.sequence > $11)
 ORDER BY e.n
RETURNING event_id, sequence, position, transaction_id::text";

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

/// The Postgres event store: appends with optimistic concurrency and loads through upcasters.
///
/// Cloning is cheap; every clone shares the pool, the upcasters and the append signal.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    upcasters: Upcasters,
    signal: AppendSignal,
}

impl EventStore {
    /// A store over `pool`; `upcasters` turn old payload versions into the current shape on load.
    pub fn new(pool: PgPool, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self {
            pool,
            upcasters: Upcasters::new(upcasters),
            signal: AppendSignal::default(),
        }
    }

    /// The pool, for read models and followers that share the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The upcasters it loads through, for followers of the same log (one list for every reader).
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
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
        let appended = append_with(
            &self.pool,
            aggregate_type,
            aggregate_id,
            expected_version,
            events,
            context,
        )
        .await?;
        self.signal.notify();
        Ok(appended)
    }

    /// [`append`](Self::append) that commits only while the aggregate `decided_with` names has
    /// not moved past the version the decision saw; `Ok(None)` when it has, and nothing was
    /// written.
    pub async fn append_if_unmoved(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: usize,
        events: &[NewEvent],
        context: &CommandContext,
        decided_with: &DecidedWith,
    ) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
        let appended = append_rows(
            &self.pool,
            Append {
                aggregate_type,
                aggregate_id,
                expected_version,
                events,
                context,
                decided_with: Some(decided_with),
            },
        )
        .await?;
        if appended.is_some() {
            self.signal.notify();
        }
        Ok(appended)
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

/// [`EventStore::append`] on any executor, so an append can join a caller's transaction
/// (tests use this to hold a transaction open and commit out of order).
pub async fn append_with<'e, E: PgExecutor<'e>>(
    executor: E,
    aggregate_type: &str,
    aggregate_id: &str,
    expected_version: usize,
    events: &[NewEvent],
    context: &CommandContext,
) -> Result<Vec<AppendedEvent>, StoreError> {
    let append = Append {
        aggregate_type,
        aggregate_id,
        expected_version,
        events,
        context,
        decided_with: None,
    };
    append_rows(executor, append).await?.ok_or_else(|| {
        // Without a condition the insert writes every row or fails; no rows is not an outcome.
        StoreError::Unexpected(format!(
            "the append to {aggregate_type}/{aggregate_id} wrote nothing"
        ))
    })
}

/// What one append writes, and the condition it is written under.
struct Append<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    expected_version: usize,
    events: &'a [NewEvent],
    context: &'a CommandContext,
    decided_with: Option<&'a DecidedWith>,
}

/// The append itself: `None` when its condition did not hold and nothing was written.
async fn append_rows<'e, E: PgExecutor<'e>>(
    executor: E,
    append: Append<'_>,
) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
    let Append {
        aggregate_type,
        aggregate_id,
        expected_version,
        events,
        context,
        decided_with,
    } = append;
    let metadata =
        serde_json::to_string(&context.to_metadata()).map_err(|source| StoreError::Serialization {
            event_type: "metadata".to_owned(),
            event_version: String::new(),
            source,
        })?;
    check_storable(aggregate_id, events, &metadata)?;
    let first = sequence_to_db(expected_version) + 1;
    let sequences: Vec<i64> = (first..).take(events.len()).collect();
    let statement = if decided_with.is_some() {
        APPEND_IF_UNMOVED
    } else {
        APPEND
    };
    let mut query = sqlx::query_as::<_, (Uuid, i64, i64, String)>(statement)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(metadata)
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(sequences)
        .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.event_version.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>());
    if let Some(other) = decided_with {
        query = query
            .bind(other.aggregate_type.as_str())
            .bind(other.aggregate_id.as_str())
            .bind(sequence_to_db(other.version));
    }
    let rows: Vec<(Uuid, i64, i64, String)> = query
        .fetch_all(executor)
        .await
        .map_err(|error| StoreError::from_append(error, aggregate_type, aggregate_id))?;
    if rows.is_empty() && !events.is_empty() {
        return Ok(None);
    }
    metrics::counter!("agentry_events_appended_total", "aggregate_type" => aggregate_type.to_owned())
        .increment(rows.len() as u64);
    let mut appended = rows
        .into_iter()
        .map(|(event_id, sequence, position, transaction_id)| {
            Ok(AppendedEvent {
                event_id,
                sequence,
                position,
                transaction_id: parse_transaction_id(&transaction_id).map_err(StoreError::Unexpected)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    appended.sort_by_key(|event| event.sequence);
    Ok(Some(appended))
}

fn sequence_to_db(sequence: usize) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}
