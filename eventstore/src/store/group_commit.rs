//! Group commit: appends of different aggregates that wait at the same moment go to Postgres as
//! one statement and one transaction (a [`Batcher`] of appends).
//!
//! Under load most of an append's cost is not its rows but its transaction: a round trip, a
//! commit (a WAL flush), the pool's checks around the connection, and a wake-up of every
//! follower. Concurrent requests each paying all of it is what kept conversation creation at a
//! fifth of a bare INSERT's rate and every step of a run waiting on two saturated cores.
//!
//! An append alone is sent in the statement it always had. A group's statement checks each
//! append's own conditions (its first sequence still free, the aggregate its decision rested on
//! unmoved) and writes only the appends that pass; any append it did not write is sent again
//! alone, which gives it exactly the answer it would have had without grouping (a conflict, or
//! "moved, nothing written"). A statement that fails (a race on a sequence between two nodes)
//! has written nothing, and each of its appends is sent again alone too.
//!
//! Each append keeps its own metadata, so its events name their own command, actor and
//! correlation. They share a transaction id, which followers handle as any multi-event append.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use sqlx::PgPool;
use uuid::Uuid;

use super::append::{AppendKeys, PendingAppend, append_alone, appended_event, sequence_to_db};
use super::{AppendedEvent, StoreError};
use crate::batch::{BatchWork, Batcher};

/// Statements of one store in flight at once: few enough that concurrent appends find them
/// busy and queue into groups, more than one so a large append does not hold up every other.
/// Measured with the conversations bench: 1, 2 and 4 gave 18.1%, 18.1% and 12.7–15.0% of a bare
/// INSERT's rate (BENCHMARKS.md, "Group commit").
pub const DEFAULT_WRITERS: usize = 2;
/// At most this many appends in one group: the statement's arrays stay small.
const MAX_GROUP_APPENDS: usize = 64;
/// A group stops growing past this many bytes of payload: large events go nearly alone.
const MAX_GROUP_BYTES: usize = 1024 * 1024;

/// Every append in the group written by one `INSERT`, each under its own conditions: its first
/// sequence not yet taken (a committed conflict is skipped here and found again when the append
/// is retried alone; an uncommitted one makes the statement fail, and all are retried alone) and
/// the aggregate it was decided with unmoved. Rows keep the order given (`ORDER BY r.n`), so
/// each append's positions follow its sequences.
const APPEND_GROUP: &str = "
WITH appends AS (
  SELECT *
    FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])
         AS a(n, aggregate_type, aggregate_id, first_sequence, other_type, other_id, other_version)
), writable AS (
  SELECT a.* FROM appends a
   WHERE NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.aggregate_type = a.aggregate_type AND e.aggregate_id = a.aggregate_id
                        AND e.sequence = a.first_sequence)
     AND (a.other_type IS NULL
          OR NOT EXISTS (SELECT 1 FROM events o
                          WHERE o.aggregate_type = a.other_type AND o.aggregate_id = a.other_id
                            AND o.sequence > a.other_version))
)
INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT r.event_id, w.aggregate_type, w.aggregate_id, r.sequence, r.event_type, r.event_version, r.payload::json, r.metadata::json
  FROM UNNEST($8::int4[], $9::uuid[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[]) WITH ORDINALITY
       AS r(append, event_id, sequence, event_type, event_version, payload, metadata, n)
  JOIN writable w ON w.n = r.append
 ORDER BY r.n
RETURNING aggregate_type, aggregate_id, event_id, sequence, position, transaction_id::text";

/// [`APPEND_GROUP`] that writes every append or none: linked appends (see
/// [`append_linked`]) commit together or not at all.
static APPEND_LINKED: LazyLock<String> = LazyLock::new(|| {
    let join = " JOIN writable w ON w.n = r.append\n";
    let all_or_none = " WHERE (SELECT count(*) FROM writable) = (SELECT count(*) FROM appends)\n";
    assert!(APPEND_GROUP.contains(join), "the group statement changed shape");
    APPEND_GROUP.replacen(join, &format!("{join}{all_or_none}"), 1)
});

pub(crate) type Outcome = Result<Option<Vec<AppendedEvent>>, StoreError>;

/// The appends of one store, grouped while they wait.
pub(crate) type GroupCommit = Batcher<GroupAppends>;

/// A group commit over `pool`, at most `writers` statements in flight.
pub(crate) fn group_commit(pool: PgPool, writers: usize) -> Arc<GroupCommit> {
    Batcher::new(GroupAppends { pool }, writers)
}

/// Writes `append`, alone or in a group, and answers as [`append_alone`] would have.
pub(crate) async fn append_grouped(group: &Arc<GroupCommit>, append: PendingAppend) -> Outcome {
    group
        .submit(append)
        .await
        .unwrap_or_else(|lost| Err(StoreError::Unexpected(lost.to_string())))
}

/// What a group of appends does: one statement, then each unwritten append alone.
pub(crate) struct GroupAppends {
    pool: PgPool,
}

impl BatchWork for GroupAppends {
    type Item = PendingAppend;
    type Output = Outcome;

    /// No two of one aggregate (the later follows the earlier's events), within the limits.
    fn may_join(&self, group: &[PendingAppend], next: &PendingAppend) -> bool {
        let bytes: usize = group.iter().chain([next]).map(PendingAppend::payload_bytes).sum();
        let same_aggregate = group.iter().any(|taken| {
            taken.aggregate_type == next.aggregate_type && taken.aggregate_id == next.aggregate_id
        });
        group.len() < MAX_GROUP_APPENDS && bytes <= MAX_GROUP_BYTES && !same_aggregate
    }

    async fn run(&self, group: Vec<PendingAppend>) -> Vec<Outcome> {
        if let [append] = group.as_slice() {
            return vec![append_alone(&self.pool, append).await];
        }
        let mut written = match append_group(&self.pool, &group, APPEND_GROUP).await {
            Ok(written) => written,
            Err(error) => {
                tracing::debug!(%error, appends = group.len(), "a group append failed; each is sent alone");
                HashMap::new()
            }
        };
        // Rare: a conflict, a moved aggregate, or a failed statement. Alone, each gets exactly
        // the answer it would have had without the group.
        futures::future::join_all(group.iter().map(|append| {
            let key = (append.aggregate_type.clone(), append.aggregate_id.clone());
            let events = written.remove(&key);
            async move {
                match events {
                    Some(mut events) => {
                        events.sort_by_key(|event| event.sequence);
                        append.count_appended(events.len());
                        Ok(Some(events))
                    }
                    None => append_alone(&self.pool, append).await,
                }
            }
        }))
        .await
    }
}

type AggregateKey = (String, String);

/// Writes `appends` (of different aggregates) in one statement, all of them or none: each
/// append's events in order, or `None` when any append's condition failed (its first sequence
/// taken, the aggregate its decision rested on moved) and nothing was written. A race on a
/// sequence with an uncommitted append is [`StoreError::Conflict`], nothing written either.
///
/// It is not grouped with other appends: a linked set stands for two commits in series (a
/// model call's charge and the run's end), and one statement alone already halves them.
pub(crate) async fn append_linked(
    pool: &PgPool,
    appends: &[PendingAppend],
) -> Result<Option<Vec<Vec<AppendedEvent>>>, StoreError> {
    let mut keys: Vec<(&str, &str)> = appends
        .iter()
        .map(|a| (a.aggregate_type.as_str(), a.aggregate_id.as_str()))
        .collect();
    keys.sort_unstable();
    if keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(StoreError::Unexpected(
            "linked appends must be of different aggregates".to_owned(),
        ));
    }
    let mut written = match append_group(pool, appends, &APPEND_LINKED).await {
        Ok(written) => written,
        Err(StoreError::Database(error)) => {
            let (aggregate_type, aggregate_id) = keys.first().copied().unwrap_or_default();
            return Err(StoreError::from_append(error, aggregate_type, aggregate_id));
        }
        Err(other) => return Err(other),
    };
    let mut answer = Vec::with_capacity(appends.len());
    for append in appends {
        let key = (append.aggregate_type.clone(), append.aggregate_id.clone());
        match written.remove(&key) {
            Some(mut events) => {
                events.sort_by_key(|event| event.sequence);
                append.count_appended(events.len());
                answer.push(events);
            }
            None if append.events.is_empty() => answer.push(Vec::new()),
            None => return Ok(None),
        }
    }
    Ok(Some(answer))
}

/// Runs [`APPEND_GROUP`] (or a statement with its parameters): the events written, by
/// aggregate. An append absent from the answer wrote nothing.
async fn append_group(
    pool: &PgPool,
    appends: &[PendingAppend],
    statement: &str,
) -> Result<HashMap<AggregateKey, Vec<AppendedEvent>>, StoreError> {
    let numbers: Vec<i32> = (0..).take(appends.len()).collect();
    let others = appends.iter().map(|a| a.decided_with.as_ref());
    let mut row_append = Vec::new();
    let mut event_ids: Vec<Uuid> = Vec::new();
    let mut sequences = Vec::new();
    let (mut types, mut versions, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
    let mut metadata: Vec<&str> = Vec::new();
    for (number, append) in numbers.iter().zip(appends) {
        let rows = append.events.iter().zip(append.sequences()).zip(&append.metadata);
        for ((event, sequence), event_metadata) in rows {
            metadata.push(event_metadata);
            row_append.push(*number);
            event_ids.push(event.event_id);
            sequences.push(sequence);
            types.push(event.event_type.as_str());
            versions.push(event.event_version.as_str());
            payloads.push(event.payload.as_str());
        }
    }
    let keys = AppendKeys::of(appends);
    let rows: Vec<(String, String, Uuid, i64, i64, String)> = sqlx::query_as(statement)
        .bind(&numbers)
        .bind(keys.aggregate_types)
        .bind(keys.aggregate_ids)
        .bind(keys.first_sequences)
        .bind(
            others
                .clone()
                .map(|o| o.map(|o| o.aggregate_type.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            others
                .clone()
                .map(|o| o.map(|o| o.aggregate_id.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            others
                .map(|o| o.map(|o| sequence_to_db(o.version)))
                .collect::<Vec<_>>(),
        )
        .bind(row_append)
        .bind(event_ids)
        .bind(sequences)
        .bind(types)
        .bind(versions)
        .bind(payloads)
        .bind(metadata)
        .fetch_all(pool)
        .await?;
    let mut written: HashMap<AggregateKey, Vec<AppendedEvent>> = HashMap::new();
    for (aggregate_type, aggregate_id, event_id, sequence, position, transaction_id) in rows {
        let event = appended_event((event_id, sequence, position, transaction_id))?;
        written
            .entry((aggregate_type, aggregate_id))
            .or_default()
            .push(event);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::{APPEND_GROUP, APPEND_LINKED};

    #[test]
    fn the_linked_statement_is_the_group_statement_writing_all_or_none() {
        assert_ne!(APPEND_LINKED.as_str(), APPEND_GROUP);
        assert!(
            APPEND_LINKED.contains("WHERE (SELECT count(*) FROM writable) = (SELECT count(*) FROM appends)")
        );
        assert_eq!(
            APPEND_LINKED.replacen(
                " WHERE (SELECT count(*) FROM writable) = (SELECT count(*) FROM appends)\n",
                "",
                1
            ),
            APPEND_GROUP
        );
    }
}
