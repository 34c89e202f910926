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
//! unmoved, its caller's standing unchanged when it carries one) and writes only the appends
//! that pass; any append it did not write is sent again alone, which gives it exactly the
//! answer it would have had without grouping (a conflict, or "moved, nothing written"). A statement that fails (a race on a sequence between two nodes)
//! has written nothing, and each of its appends is sent again alone too; but one whose
//! connection was lost with no word from the server may have been committed, and each of its
//! appends is answered [`StoreError::OutcomeUnknown`] rather than "not written".
//!
//! Each append keeps its own metadata, so its events name their own command, actor and
//! correlation. They share a transaction id, which followers handle as any multi-event append.
//!
//! The group's members are *units*: one append, or a linked set of appends of different
//! aggregates that must be written all or none (see `linked_commands.rs`). The statement
//! writes a unit only if every one of its appends' conditions holds; a linked set it did not
//! write is sent again alone, all or none (for a linked set, "nothing written" rather than a
//! conflict when the group failed on a race with an uncommitted append: its callers treat both
//! alike and decide again). Linked sets used to go alone, a commit of their own each: with a
//! billed run's start and end both linked, across 16 organizations every step of a run got
//! slower than the commits they saved (BENCHMARKS.md, "A billed run's start with its first
//! hold", 2026-12-06). The price: a linked set, like any append, waits for one of the group's
//! writers, and the account's batch holds the account meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgExecutor, PgPool, Postgres};
use uuid::Uuid;

use super::append::{AppendKeys, PendingAppend, append_alone, appended_event, sequence_to_db};
use super::standing::{StandingParts, standing_parts, standing_unchanged};
use super::{AppendedEvent, StoreError};
use crate::batch::{BatchWork, Batcher};
use crate::database::{
    cancelled_by_the_server, ended_before_the_statement, generic_plan_pool, outcome_unknown,
};

/// Statements of one store in flight at once: few enough that concurrent appends find them
/// busy and queue into groups, more than one so a large append does not hold up every other.
/// Measured with the conversations bench: 1, 2 and 4 gave 18.1%, 18.1% and 12.7–15.0% of a bare
/// INSERT's rate (BENCHMARKS.md, "Group commit").
pub const DEFAULT_WRITERS: usize = 2;
/// How long a writer waits for its statement's answer. Past it the connection is taken for
/// stuck (its backend frozen by SIGSTOP or a paused VM, or its host gone without a reset, which
/// TCP alone may never notice: a frozen backend's kernel still acknowledges), closed rather
/// than returned to the pool, and each of the statement's units answered
/// [`StoreError::OutcomeUnknown`]: the server may still commit the statement once it runs
/// again. Without it, a backend frozen under a statement held its writer, and every append
/// queued behind it, for good. A statement merely slow in its execution (waiting on a lock, a
/// slow scan) is ended by the server first, at [`SERVER_STATEMENT_TIMEOUT`], with nothing
/// committed, and its units are sent again alone on the shared pool by their callers, which
/// wait as long as it takes. The server's timer does not cover the commit's WAL flush, nor the
/// sending of a large statement: one stuck there reaches this deadline, its outcome unknown.
pub const STATEMENT_DEADLINE: Duration = Duration::from_secs(5);
/// The writers' sessions' own `statement_timeout`: a second before [`STATEMENT_DEADLINE`], so a
/// backend that can still act ends its statement with a known outcome. A group's statement
/// takes milliseconds, even under load.
const SERVER_STATEMENT_TIMEOUT: Duration = Duration::from_secs(4);
/// At most this many appends in one group: the statement's arrays stay small.
const MAX_GROUP_APPENDS: usize = 64;
/// A group stops growing past this many bytes of payload: large events go nearly alone.
const MAX_GROUP_BYTES: usize = 1024 * 1024;

/// The end every group statement shares: every event of the appends in `writable` (a CTE the
/// statement defines), in the order given, and what the caller reads back. One text, so the
/// statements cannot drift apart in what they write or answer.
macro_rules! insert_writable {
    () => {
        "INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT r.event_id, w.aggregate_type, w.aggregate_id, r.sequence, r.event_type, r.event_version, r.payload::json, r.metadata::json
  FROM UNNEST($8::int4[], $9::uuid[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[]) WITH ORDINALITY
       AS r(append, event_id, sequence, event_type, event_version, payload, metadata, n)
  JOIN writable w ON w.n = r.append
 ORDER BY r.n
RETURNING aggregate_type, aggregate_id, event_id, sequence, position, transaction_id::text"
    };
}

/// A group statement: the appends' arrays (`$1` to `$7`, then `$extra_arrays`, naming the
/// extra columns `$extra_columns`), each append written when its conditions (its first
/// sequence free, the aggregate it was decided with unmoved, and `$extra_condition`) hold.
macro_rules! append_group {
    ($extra_arrays:expr, $extra_columns:expr, $extra_condition:expr) => {
        concat!(
            "
WITH appends AS (
  SELECT *
    FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[]",
            $extra_arrays,
            ")
         AS a(n, aggregate_type, aggregate_id, first_sequence, other_type, other_id, other_version",
            $extra_columns,
            ")
), writable AS (
  SELECT a.* FROM appends a
   WHERE (SELECT 1 FROM events e
           WHERE e.aggregate_type = a.aggregate_type AND e.aggregate_id = a.aggregate_id
             AND e.sequence = a.first_sequence) IS NULL
     AND (a.other_type IS NULL
          OR (SELECT 1 FROM events o
               WHERE o.aggregate_type = a.other_type AND o.aggregate_id = a.other_id
                 AND o.sequence > a.other_version
               LIMIT 1) IS NULL)",
            $extra_condition,
            "
)
",
            insert_writable!()
        )
    };
}

/// Every append in the group written by one `INSERT`, each under its own conditions: its first
/// sequence not yet taken (a committed conflict is skipped here and found again when the append
/// is retried alone; an uncommitted one makes the statement fail, and all are retried alone) and
/// the aggregate it was decided with unmoved. Rows keep the order given (`ORDER BY r.n`), so
/// each append's positions follow its sequences.
///
/// Each condition is a scalar subquery (a probe of the primary key), not `NOT EXISTS`: the
/// statement runs under one generic plan ([`group_commit`]), and planned on an empty log a
/// `NOT EXISTS` becomes a hash anti-join over a sequential scan of `events`.
pub(crate) const APPEND_GROUP: &str = append_group!("", "", "");

/// [`APPEND_GROUP`] for a group in which an append carries its caller's standing
/// (`$15` to `$18` the key, `$19` the text; see `standing.rs`): that append is written only
/// while the standing is that one. Kept apart so that a group without a guarded append reads
/// no identity table (nor waits on one: a rebuild of the identity view locks its tables while
/// it swaps them in). The plain appends that share a group with a guarded one run in this
/// statement and may wait so, for the moment of the swap; keeping them apart would split the
/// groups of a node that starts conversations while it runs agents.
pub(crate) const APPEND_GUARDED_GROUP: &str = append_group!(
    ",
                $15::uuid[], $16::uuid[], $17::uuid[], $18::uuid[], $19::text[]",
    ",
              guard_user_id, guard_org_id, guard_session_id, guard_impersonation_id, guard_standing",
    concat!("\n     AND ", standing_unchanged!("a.guard_"))
);

/// [`APPEND_GROUP`] for a group holding a linked set: a unit (`$15`, one number per append) is
/// written only if every one of its appends' conditions holds. Kept apart because its extra
/// step cost plain groups a sixth of conversation creation's rate (BENCHMARKS.md, the
/// conversations bench of 2026-12-06 17:12). Such a group carries no standing guard
/// ([`GroupAppends::may_join`]).
pub(crate) const APPEND_UNITS: &str = concat!(
    "
WITH appends AS (
  SELECT *
    FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $15::int4[])
         AS a(n, aggregate_type, aggregate_id, first_sequence, other_type, other_id, other_version, unit)
), checked AS (
  SELECT a.*,
         (SELECT 1 FROM events e
           WHERE e.aggregate_type = a.aggregate_type AND e.aggregate_id = a.aggregate_id
             AND e.sequence = a.first_sequence) IS NULL
         AND (a.other_type IS NULL
              OR (SELECT 1 FROM events o
                   WHERE o.aggregate_type = a.other_type AND o.aggregate_id = a.other_id
                     AND o.sequence > a.other_version
                   LIMIT 1) IS NULL) AS holds
    FROM appends a
), writable AS (
  SELECT c.* FROM checked c
   WHERE NOT EXISTS (SELECT 1 FROM checked u WHERE u.unit = c.unit AND NOT u.holds)
)
",
    insert_writable!()
);

/// What one unit came to: each of its appends' events, `None` when nothing of it was written
/// (a condition did not hold), [`StoreError::Conflict`] when one of its aggregates already had
/// an event at its sequence.
pub(crate) type UnitOutcome = Result<Option<Vec<Vec<AppendedEvent>>>, StoreError>;

pub(crate) type Outcome = Result<Option<Vec<AppendedEvent>>, StoreError>;

/// The appends of one store, grouped while they wait.
pub(crate) type GroupCommit = Batcher<GroupAppends>;

/// A group commit beside `pool`, at most `writers` statements in flight, plus one urgent unit
/// alone ([`GroupAppends::urgent`]).
///
/// Its statements go over a pool of their own whose sessions plan each statement once
/// ([`generic_plan_pool`]): the group statements were planned anew on 60% of their executions
/// (the arrays' lengths change), 2.7 s of planning beside 4.4 s of execution in the billing
/// bench. One connection per writer and one for the urgent unit. The units a writer hands back
/// unwritten (a failed group's, as many as 64 at once, and a lone unit that did not run: rare)
/// are sent again alone by their callers, each in its own task, over `pool`: no writer waits
/// for them ([`Written::SendAlone`]).
pub(crate) fn group_commit(pool: &PgPool, writers: usize) -> Arc<GroupCommit> {
    let connections = u32::try_from(writers + 1).unwrap_or(u32::MAX);
    let generic = generic_plan_pool(pool, connections, "agentry-appends", SERVER_STATEMENT_TIMEOUT);
    Batcher::new(
        GroupAppends {
            pool: generic,
            retries: pool.clone(),
        },
        writers,
    )
}

/// Writes `append`, alone or in a group, and answers as [`append_alone`] would have.
pub(crate) async fn append_grouped(group: &Arc<GroupCommit>, append: PendingAppend) -> Outcome {
    let outcome = submit(group, vec![append]).await?;
    Ok(outcome.map(|mut appended| appended.pop().unwrap_or_default()))
}

/// What a writer answers a unit: its outcome, or the unit itself, which its caller then sends
/// again alone on the shared pool. A writer does not send it itself: it would wait for it, and
/// a unit whose statement the server ended after waiting on a lock may wait on it as long
/// again, holding the writer, and every append queued behind it, meanwhile.
pub(crate) enum Written {
    /// What the unit came to.
    Answered(UnitOutcome),
    /// Not written, and known not to be (a condition that did not hold in a group, a failed
    /// group statement, a lone statement the server did not run or ended).
    SendAlone(Vec<PendingAppend>),
}

/// Hands `unit` to the group commit, and sends it again alone if a writer handed it back.
async fn submit(group: &Arc<GroupCommit>, unit: Vec<PendingAppend>) -> UnitOutcome {
    match group.submit(unit).await {
        Ok(Written::Answered(outcome)) => outcome,
        // Its connection taken apart from the statement, as the writers' are: a failure to
        // connect sent nothing.
        Ok(Written::SendAlone(unit)) => match group.work().retries.acquire().await {
            Ok(mut connection) => open_outcome(unit_alone(&mut *connection, &unit).await),
            Err(error) => Err(StoreError::Database(error)),
        },
        Err(lost) => Err(StoreError::Unexpected(lost.to_string())),
    }
}

/// Writes `appends` (of different aggregates) all or none, alone or in a group with other
/// units: each append's events in order, or `None` when any append's condition failed (its
/// first sequence taken, the aggregate its decision rested on moved) and nothing was written.
/// None of them may carry a standing guard ([`StoreError::Unexpected`]).
/// A race on a sequence with an uncommitted append is [`StoreError::Conflict`] (or `None`
/// when the set was retried after its group failed on it), nothing written either.
pub(crate) async fn append_linked(group: &Arc<GroupCommit>, appends: Vec<PendingAppend>) -> UnitOutcome {
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
    submit(group, appends).await
}

/// What a group of units does: one statement, each unit it did not write handed back to be sent
/// again alone.
pub(crate) struct GroupAppends {
    /// For the group's statement, or a lone unit's: at most one per writer and the urgent one.
    pool: PgPool,
    /// For the units the writers hand back ([`Written::SendAlone`]), sent again alone by their
    /// callers.
    retries: PgPool,
}

impl BatchWork for GroupAppends {
    /// A unit: one append, or a linked set written all or none.
    type Item = Vec<PendingAppend>;
    type Output = Written;

    /// No two appends of one aggregate (the later follows the earlier's events), within the
    /// limits; and no linked set in a group with a standing guard, which no one statement checks.
    fn may_join(&self, group: &[Vec<PendingAppend>], next: &Vec<PendingAppend>) -> bool {
        let taken = || group.iter().flatten();
        let appends = taken().count() + next.len();
        let bytes: usize = taken().chain(next).map(PendingAppend::payload_bytes).sum();
        let same_aggregate = next.iter().any(|append| {
            taken().any(|other| {
                other.aggregate_type == append.aggregate_type && other.aggregate_id == append.aggregate_id
            })
        });
        let linked = |unit: &Vec<PendingAppend>| unit.len() > 1;
        let guarded = |unit: &Vec<PendingAppend>| unit.iter().any(PendingAppend::guarded);
        let mixed =
            (linked(next) || group.iter().any(linked)) && (guarded(next) || group.iter().any(guarded));
        appends <= MAX_GROUP_APPENDS && bytes <= MAX_GROUP_BYTES && !same_aggregate && !mixed
    }

    /// A linked set carrying more than one rider: a busy aggregate's coalesced batch (an
    /// organization's credit account) with several runs' appends riding in it. Every command
    /// queued on that account, so every run of the organization, waits behind it; queued
    /// behind the writers' plain appends, it held them all up. It gets the writer kept for
    /// urgent work. A batch with one rider waits as any append, so the extra writer stays
    /// rare; so does a busy account's batch that happens to carry one rider or none (its
    /// reservations hold the organization up as well, but count of riders is what the unit
    /// shows). Every linked set today is one aggregate's batch and its riders: a linked set of
    /// another shape would need its own rule here.
    ///
    /// Measured with the billing bench, one organization: billed runs +11% per second, billing
    /// per LLM call +2.3 / +2.4 ms p50 / p99 against +4.5 / +6.7. A third writer for every
    /// group instead helped the same runs, but cost conversation creation 12% (smaller groups);
    /// urgent for every linked set, the 16-organization phase got slower at p99 (BENCHMARKS.md,
    /// 2026-12-06 19:15–19:51).
    fn urgent(&self, unit: &Vec<PendingAppend>) -> bool {
        unit.len() > 2
    }

    /// A lone append may wait a few yields for the appends on their way, so that a burst goes
    /// as one statement; a linked set may not: it is an account's batch with the runs of its
    /// organization waiting behind it. Gathering everything cost billed runs across
    /// organizations +3.7 / +6.2 ms per LLM call; gathering lone appends only, conversations
    /// +8 to +20% per second, and billing in one organization +0.9 ms p50 per LLM call
    /// instead of +2.5 to +4.5 (BENCHMARKS.md, "Lone appends gather, linked sets do not").
    fn gathers(&self, unit: &Vec<PendingAppend>) -> bool {
        unit.len() == 1
    }

    async fn run(&self, mut group: Vec<Vec<PendingAppend>>) -> Vec<Written> {
        if let [_] = group.as_slice() {
            return vec![self.lone_unit(group.swap_remove(0)).await];
        }
        let units: Vec<&[PendingAppend]> = group.iter().map(Vec::as_slice).collect();
        // Taken apart from the statement, so that a failure to connect (nothing sent) is not
        // mistaken for a connection lost under the statement (outcome unknown).
        let sent = match self.pool.acquire().await {
            Ok(mut connection) => {
                match tokio::time::timeout(STATEMENT_DEADLINE, append_group(&mut *connection, &units)).await {
                    Ok(sent) => sent,
                    Err(_) => Err(stuck(connection)),
                }
            }
            Err(error) => {
                tracing::debug!(%error, "no connection for a group append; each unit is sent alone");
                Ok(HashMap::new())
            }
        };
        let mut written = match sent.map_err(lost_under_the_statement) {
            Ok(written) => written,
            Err(unknown @ StoreError::OutcomeUnknown(_)) => {
                // The connection was lost with no word from the server, or no answer came in
                // time: the statement may have been committed. Sent again, its units would be
                // answered "not written" (their sequences taken by themselves), and their
                // callers would decide again on top.
                tracing::warn!(error = %unknown, units = group.len(), "a group append lost its connection; its outcome is unknown");
                return group
                    .iter()
                    .map(|_| Written::Answered(Err(unknown.lossy_copy())))
                    .collect();
            }
            Err(error) => {
                tracing::debug!(%error, units = group.len(), "a group append failed; each unit is sent alone");
                HashMap::new()
            }
        };
        // Rare: a conflict, a moved aggregate, a changed standing, or a failed statement. Sent
        // again alone by its caller, each unit gets exactly the answer it would have had
        // without the group.
        group
            .into_iter()
            .map(|unit| match take_unit(&mut written, &unit) {
                Some(events) => Written::Answered(Ok(Some(events))),
                None => Written::SendAlone(unit),
            })
            .collect()
    }
}

impl GroupAppends {
    /// A unit alone on the writers' pool, handed back to be sent again on the shared pool
    /// when the server had ended the session of the connection it got: the writers' pool hands
    /// out connections idle for less than a second untested ([`generic_plan_pool`]), so one Postgres ended
    /// meanwhile with its notice (`pg_terminate_backend`, `idle_session_timeout`) answers the
    /// first statement sent on it with that `FATAL`, the statement not run
    /// ([`ended_before_the_statement`]). Any other failure is answered as it is, and a
    /// connection lost without that notice (a crash, a failover, a vanished host: an I/O error)
    /// as [`StoreError::OutcomeUnknown`]: it leaves open whether the unit was written, and sent
    /// again it would be answered as not written.
    ///
    /// Its statement is bounded as a group's is ([`STATEMENT_DEADLINE`]); one the server ended
    /// at its own timeout (nothing committed) is handed back too, as a failed group's units are.
    async fn lone_unit(&self, unit: Vec<PendingAppend>) -> Written {
        let outcome = match self.pool.acquire().await {
            Ok(mut connection) => {
                match tokio::time::timeout(STATEMENT_DEADLINE, unit_alone(&mut *connection, &unit)).await {
                    Ok(outcome) => open_outcome(outcome),
                    Err(_) => Err(stuck(connection)),
                }
            }
            Err(error) => Err(StoreError::Database(error)),
        };
        match outcome {
            Err(StoreError::Database(error))
                if ended_before_the_statement(&error) || cancelled_by_the_server(&error) =>
            {
                tracing::debug!(%error, "an append did not run (its session had been ended, or it ran out of time); sending it again on the shared pool");
                Written::SendAlone(unit)
            }
            outcome => Written::Answered(outcome),
        }
    }
}

/// `unit`'s events from what a statement wrote, when it wrote the whole unit (an append with
/// no events writes nothing and counts as written).
fn take_unit(
    written: &mut HashMap<AggregateKey, Vec<AppendedEvent>>,
    unit: &[PendingAppend],
) -> Option<Vec<Vec<AppendedEvent>>> {
    let whole = unit.iter().all(|append| {
        append.events.is_empty()
            || written.contains_key(&(append.aggregate_type.clone(), append.aggregate_id.clone()))
    });
    if !whole {
        return None;
    }
    let events = unit
        .iter()
        .map(|append| {
            let key = (append.aggregate_type.clone(), append.aggregate_id.clone());
            let mut events = written.remove(&key).unwrap_or_default();
            events.sort_by_key(|event| event.sequence);
            append.count_appended(events.len());
            events
        })
        .collect();
    Some(events)
}

/// The error for a statement that had no answer within [`STATEMENT_DEADLINE`], after closing
/// its connection: returned to the pool, it would be tested before it is taken back, waiting on
/// the stuck backend as long again (for good, with one frozen), and kept if it ever answered.
/// Detached and dropped, its socket is closed at once (nothing more sent, not even the rest of
/// the statement) and the pool may open another in its place.
fn stuck(connection: PoolConnection<Postgres>) -> StoreError {
    drop(connection.detach());
    tracing::warn!(deadline = ?STATEMENT_DEADLINE, "an append had no answer in time; its connection is closed and its outcome unknown");
    StoreError::OutcomeUnknown(format!(
        "no answer to the append within {STATEMENT_DEADLINE:?}: its connection was closed"
    ))
}

/// A statement's failure, with a connection lost under it read as what it is: the statement
/// may have been committed ([`StoreError::OutcomeUnknown`]).
fn lost_under_the_statement(error: StoreError) -> StoreError {
    match error {
        StoreError::Database(error) if outcome_unknown(&error) => {
            StoreError::OutcomeUnknown(error.to_string())
        }
        error => error,
    }
}

/// [`lost_under_the_statement`] for a unit's outcome.
fn open_outcome(outcome: UnitOutcome) -> UnitOutcome {
    outcome.map_err(lost_under_the_statement)
}

/// One unit in a statement of its own: one append as it always was, a linked set all or none.
async fn unit_alone<'e, E: PgExecutor<'e>>(executor: E, unit: &[PendingAppend]) -> UnitOutcome {
    if let [append] = unit {
        return Ok(append_alone(executor, append).await?.map(|events| vec![events]));
    }
    let mut written = match append_group(executor, &[unit]).await {
        Ok(written) => written,
        Err(StoreError::Database(error)) => {
            let first = unit.first();
            let (aggregate_type, aggregate_id) = first
                .map(|a| (a.aggregate_type.as_str(), a.aggregate_id.as_str()))
                .unwrap_or_default();
            return Err(StoreError::from_append(error, aggregate_type, aggregate_id));
        }
        Err(other) => return Err(other),
    };
    Ok(take_unit(&mut written, unit))
}

type AggregateKey = (String, String);

/// Runs [`APPEND_GROUP`] (or [`APPEND_UNITS`] when a unit is a linked set,
/// [`APPEND_GUARDED_GROUP`] when an append carries a standing guard) over `units`: the events
/// written, by aggregate. An append absent from the answer wrote nothing. A linked set with a
/// guarded append is refused ([`StoreError::Unexpected`]), nothing written: no statement
/// checks both.
async fn append_group<'e, E: PgExecutor<'e>>(
    executor: E,
    units: &[&[PendingAppend]],
) -> Result<HashMap<AggregateKey, Vec<AppendedEvent>>, StoreError> {
    let appends: Vec<&PendingAppend> = units.iter().flat_map(|unit| unit.iter()).collect();
    let unit_numbers: Vec<i32> = (0..)
        .zip(units)
        .flat_map(|(number, unit)| std::iter::repeat_n(number, unit.len()))
        .collect();
    let numbers: Vec<i32> = (0..).take(appends.len()).collect();
    let others = appends.iter().map(|a| a.decided_with.as_ref());
    let mut row_append = Vec::new();
    let mut event_ids: Vec<Uuid> = Vec::new();
    let mut sequences = Vec::new();
    let (mut types, mut versions, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
    let mut metadata: Vec<&str> = Vec::new();
    for (number, append) in numbers.iter().zip(appends.iter().copied()) {
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
    let keys = AppendKeys::of(appends.iter().copied());
    let linked = units.iter().any(|unit| unit.len() > 1);
    let guarded = appends.iter().any(|append| append.guarded());
    let statement = match (linked, guarded) {
        (false, false) => APPEND_GROUP,
        (false, true) => APPEND_GUARDED_GROUP,
        (true, false) => APPEND_UNITS,
        (true, true) => {
            return Err(StoreError::Unexpected(
                "a linked set goes in no group with a standing guard".to_owned(),
            ));
        }
    };
    let mut query = sqlx::query_as::<_, (String, String, Uuid, i64, i64, String)>(statement)
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
        .bind(metadata);
    if guarded {
        let guards: Vec<StandingParts> = appends
            .iter()
            .map(|a| standing_parts(a.decided_with.as_ref()))
            .collect();
        query = query
            .bind(guards.iter().map(|g| g.user_id).collect::<Vec<_>>())
            .bind(guards.iter().map(|g| g.org_id).collect::<Vec<_>>())
            .bind(guards.iter().map(|g| g.session_id).collect::<Vec<_>>())
            .bind(guards.iter().map(|g| g.impersonation_id).collect::<Vec<_>>())
            .bind(guards.iter().map(|g| g.text).collect::<Vec<_>>());
    }
    if linked {
        query = query.bind(unit_numbers);
    }
    let rows = query.fetch_all(executor).await?;
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
    use super::{APPEND_GROUP, APPEND_GUARDED_GROUP, APPEND_UNITS, lost_under_the_statement};
    use crate::StoreError;

    /// A connection lost under a statement leaves its outcome open; a busy pool (nothing sent)
    /// and a conflict do not.
    #[test]
    fn only_a_connection_lost_under_the_statement_leaves_the_outcome_unknown() {
        let io = |kind| sqlx::Error::Io(std::io::Error::new(kind, "lost"));
        for lost in [
            io(std::io::ErrorKind::ConnectionReset),
            io(std::io::ErrorKind::UnexpectedEof),
            sqlx::Error::Protocol("unexpected message".into()),
        ] {
            let answered = lost_under_the_statement(StoreError::Database(lost));
            assert!(matches!(answered, StoreError::OutcomeUnknown(_)), "{answered:?}");
        }
        let busy = lost_under_the_statement(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert!(
            matches!(busy, StoreError::Database(sqlx::Error::PoolTimedOut)),
            "{busy:?}"
        );
        let conflict = lost_under_the_statement(StoreError::Conflict {
            aggregate_type: "run".into(),
            aggregate_id: "1".into(),
        });
        assert!(matches!(conflict, StoreError::Conflict { .. }), "{conflict:?}");
    }

    /// The statements write rows the same way; only which appends are writable differs, and
    /// only the guarded one reads the identity view.
    #[test]
    fn the_units_statement_inserts_as_the_group_statement_does() {
        let insert =
            |statement: &'static str| &statement[statement.find("INSERT INTO events").unwrap_or(0)..];
        assert_eq!(insert(APPEND_UNITS), insert(APPEND_GROUP));
        assert_eq!(insert(APPEND_GUARDED_GROUP), insert(APPEND_GROUP));
        assert!(APPEND_UNITS.contains("$15::int4[]") && !APPEND_GROUP.contains("$15"));
        assert!(APPEND_GUARDED_GROUP.contains("$19::text[]") && APPEND_GUARDED_GROUP.contains("memberships"));
        assert!(!APPEND_GROUP.contains("memberships") && !APPEND_UNITS.contains("memberships"));
    }
}
