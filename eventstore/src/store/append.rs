//! One command's append in one statement: the path every append took before group commit,
//! and still the one for an append alone, inside a caller's transaction, or retried on its own
//! after its group's statement failed.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::standing::{standing_parts, standing_unchanged};
use super::storable::check_storable;
use super::{AppendedEvent, CommandContext, DecidedWith, NewEvent, StoreError};
use crate::log::parse_transaction_id;

/// One round trip for all the events of a command (or of several commands on one aggregate
/// decided together), whatever their number: the rows travel as arrays, each with its command's
/// metadata. `WITH ORDINALITY … ORDER BY` makes the rows reach
/// the insert in the order given, so positions (taken at insert) follow sequences; without it
/// that order would only be what today's plan happens to produce.
pub(crate) const APPEND: &str = "
INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT e.event_id, $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, e.metadata::json
  FROM UNNEST($3::text[], $4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
       AS e(metadata, event_id, sequence, event_type, event_version, payload, n)
 ORDER BY e.n
RETURNING event_id, sequence, position, transaction_id::text";

/// [`APPEND`] that inserts nothing when the aggregate `$9`/`$10` has an event after `$11`, or
/// when `$guard` does not hold.
macro_rules! append_if_unmoved {
    ($guard:expr) => {
        concat!(
            "
INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT e.event_id, $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, e.metadata::json
  FROM UNNEST($3::text[], $4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
       AS e(metadata, event_id, sequence, event_type, event_version, payload, n)
 WHERE NOT EXISTS (SELECT 1 FROM events g
                    WHERE g.aggregate_type = $9 AND g.aggregate_id = $10 AND g.sequence > $11)",
            $guard,
            "
 ORDER BY e.n
RETURNING event_id, sequence, position, transaction_id::text"
        )
    };
}

/// [`APPEND`] that inserts nothing when the aggregate `$9`/`$10` has an event after `$11`: the
/// other aggregate a decision rested on moved (see [`DecidedWith`]). One probe of the primary key.
///
/// It runs under one generic plan (the group commit's pool), where a correlated `NOT EXISTS`
/// could become a hash over a scan of `events`; this one refers to no row of the statement, so
/// it is a one-time probe whatever the plan (`tests/store/generic_plans.rs` checks it).
pub(crate) const APPEND_IF_UNMOVED: &str = append_if_unmoved!("");

/// [`APPEND_IF_UNMOVED`] that also inserts nothing unless the caller's standing (`$12` to `$15`
/// its user, organization, session and impersonation, `$16` its text) is still that one: five
/// key probes of the identity read model (`standing.rs`). Kept apart so that no other statement
/// reads (or waits on) an identity table.
pub(crate) const APPEND_IF_GUARDED: &str = append_if_unmoved!(concat!(
    "
   AND (SELECT ",
    standing_unchanged!("k.guard_"),
    "
          FROM (SELECT $12::uuid AS guard_user_id, $13::uuid AS guard_org_id, $14::uuid AS guard_session_id,
                       $15::uuid AS guard_impersonation_id, $16::text AS guard_standing) k)"
));

/// What one command appends, owned, checked and with its metadata serialized: ready to be
/// written alone or in a group.
#[derive(Clone, Debug)]
pub(crate) struct PendingAppend {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's version the command was decided on; its events follow it.
    pub expected_version: usize,
    pub events: Vec<NewEvent>,
    /// Each event's metadata as JSON text: its command's.
    pub metadata: Vec<String>,
    /// The other aggregate the decision rested on, if any: nothing is written if it moved.
    pub decided_with: Option<DecidedWith>,
}

impl PendingAppend {
    /// The events of several commands on one aggregate, decided one after another, in one
    /// append: each event keeps its own command's metadata. Refuses what the store could never
    /// hold before anything is sent.
    pub fn of_commands(
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: usize,
        commands: &[(&[NewEvent], &CommandContext)],
    ) -> Result<Self, StoreError> {
        let mut all_events = Vec::new();
        let mut metadata = Vec::new();
        for (events, context) in commands {
            let serialized = serde_json::to_string(&context.to_metadata()).map_err(|source| {
                StoreError::Serialization {
                    event_type: "metadata".to_owned(),
                    event_version: String::new(),
                    source,
                }
            })?;
            check_storable(aggregate_id, events, &serialized)?;
            metadata.extend(std::iter::repeat_n(serialized, events.len()));
            all_events.extend_from_slice(events);
        }
        Ok(Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            expected_version,
            events: all_events,
            metadata,
            decided_with: None,
        })
    }

    /// Whether it carries its caller's standing, to be confirmed by the statement.
    pub fn guarded(&self) -> bool {
        self.decided_with.as_ref().is_some_and(|d| d.standing.is_some())
    }

    /// The sequence of its first event.
    pub fn first_sequence(&self) -> i64 {
        sequence_to_db(self.expected_version) + 1
    }

    /// Its events' sequences, in order.
    pub fn sequences(&self) -> impl Iterator<Item = i64> {
        (self.first_sequence()..).take(self.events.len())
    }

    /// The bytes of its payloads, which bound how many appends share a statement.
    pub fn payload_bytes(&self) -> usize {
        self.events.iter().map(|event| event.payload.len()).sum()
    }

    /// Counts the rows written for it, once they are.
    pub fn count_appended(&self, rows: usize) {
        metrics::counter!("agentry_events_appended_total", "aggregate_type" => self.aggregate_type.clone())
            .increment(rows as u64);
    }
}

/// The aggregates of several appends and their first sequences, as parallel arrays: how a
/// statement over many appends (a group, a linked set's check) receives them.
pub(crate) struct AppendKeys<'a> {
    pub aggregate_types: Vec<&'a str>,
    pub aggregate_ids: Vec<&'a str>,
    pub first_sequences: Vec<i64>,
}

impl<'a> AppendKeys<'a> {
    pub fn of(appends: impl IntoIterator<Item = &'a PendingAppend>) -> Self {
        let mut keys = Self {
            aggregate_types: Vec::new(),
            aggregate_ids: Vec::new(),
            first_sequences: Vec::new(),
        };
        for append in appends {
            keys.aggregate_types.push(&append.aggregate_type);
            keys.aggregate_ids.push(&append.aggregate_id);
            keys.first_sequences.push(append.first_sequence());
        }
        keys
    }
}

/// [`EventStore::append`](super::EventStore::append) on any executor, so an append can join a
/// caller's transaction (tests use this to hold a transaction open and commit out of order).
pub async fn append_with<'e, E: PgExecutor<'e>>(
    executor: E,
    aggregate_type: &str,
    aggregate_id: &str,
    expected_version: usize,
    events: &[NewEvent],
    context: &CommandContext,
) -> Result<Vec<AppendedEvent>, StoreError> {
    let commands = [(events, context)];
    let append = PendingAppend::of_commands(aggregate_type, aggregate_id, expected_version, &commands)?;
    append_alone(executor, &append).await?.ok_or_else(|| {
        // Without a condition the insert writes every row or fails; no rows is not an outcome.
        StoreError::Unexpected(format!(
            "the append to {aggregate_type}/{aggregate_id} wrote nothing"
        ))
    })
}

/// One append in one statement: `None` when its condition did not hold and nothing was
/// written; [`StoreError::Conflict`] when the aggregate already had an event at its sequence.
pub(crate) async fn append_alone<'e, E: PgExecutor<'e>>(
    executor: E,
    append: &PendingAppend,
) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
    let events = &append.events;
    let statement = match &append.decided_with {
        None => APPEND,
        Some(_) if append.guarded() => APPEND_IF_GUARDED,
        Some(_) => APPEND_IF_UNMOVED,
    };
    let mut query = sqlx::query_as::<_, (Uuid, i64, i64, String)>(statement)
        .bind(append.aggregate_type.as_str())
        .bind(append.aggregate_id.as_str())
        .bind(&append.metadata)
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(append.sequences().collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.event_version.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>());
    if let Some(other) = &append.decided_with {
        query = query
            .bind(other.aggregate_type.as_str())
            .bind(other.aggregate_id.as_str())
            .bind(sequence_to_db(other.version));
    }
    if append.guarded() {
        let guard = standing_parts(append.decided_with.as_ref());
        query = query
            .bind(guard.user_id)
            .bind(guard.org_id)
            .bind(guard.session_id)
            .bind(guard.impersonation_id)
            .bind(guard.text);
    }
    let rows: Vec<(Uuid, i64, i64, String)> = query
        .fetch_all(executor)
        .await
        .map_err(|error| StoreError::from_append(error, &append.aggregate_type, &append.aggregate_id))?;
    if rows.is_empty() && !events.is_empty() {
        return Ok(None);
    }
    append.count_appended(rows.len());
    let mut appended = rows
        .into_iter()
        .map(appended_event)
        .collect::<Result<Vec<_>, StoreError>>()?;
    appended.sort_by_key(|event| event.sequence);
    Ok(Some(appended))
}

/// A row the insert returned: `(event_id, sequence, position, transaction_id as text)`.
pub(crate) fn appended_event(
    (event_id, sequence, position, transaction_id): (Uuid, i64, i64, String),
) -> Result<AppendedEvent, StoreError> {
    Ok(AppendedEvent {
        event_id,
        sequence,
        position,
        transaction_id: parse_transaction_id(&transaction_id).map_err(StoreError::Unexpected)?,
    })
}

pub(crate) fn sequence_to_db(sequence: usize) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}
