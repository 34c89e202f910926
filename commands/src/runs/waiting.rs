//! Runs waiting for an executor, read from the log for the sweep that dispatches again the runs
//! whose dispatch was lost (a publish to a queue that was briefly unreachable).
//!
//! Every node sweeps every few seconds, so the read must stay cheap however long the log grows:
//! it reads only the events written since a *horizon*, a transaction id below which every
//! waiting run is already known. Transaction ids are taken in order and an event becomes
//! visible when its transaction commits, so the horizon moves up to the oldest transaction
//! still open (`pg_snapshot_xmin`), or to the oldest run still waiting, whichever is lower:
//! nothing below it can still appear or still wait. Reading events by `transaction_id` is what
//! the log followers do, on the same index (`events_log_order`).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Where a sweep for waiting runs starts reading the log: a transaction id below which no run
/// waits that the sweeper does not already know of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SweepHorizon(u64);

/// A run that waits for an executor (queued, or its approvals decided) and has waited long
/// enough that its dispatch should have been taken by now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WaitingRun {
    /// The run.
    pub run_id: Uuid,
    /// Its version when it began to wait: with the run id, the identity of its dispatch.
    pub version: u64,
}

/// A run whose latest event is one after which it may wait for an executor.
pub(super) struct Candidate {
    pub(super) run_id: Uuid,
    pub(super) version: u64,
    pub(super) transaction_id: u64,
    /// `run.queued`: it certainly waits. The others (a decision on a tool call) only when no
    /// other call of the step is still pending, which the run's state tells.
    pub(super) certainly_waiting: bool,
    /// It was recorded longer ago than the sweep's grace period.
    pub(super) due: bool,
}

/// The oldest transaction still open: where a sweep that knows of no waiting run starts.
const NOW: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";

/// The latest events of runs that may be waiting, written since `$1`, and (in the same
/// snapshot) the oldest transaction still open. `$2`: the grace period in seconds.
const CANDIDATES: &str = "
    WITH snapshot AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
    SELECT s.xmin::text, w.aggregate_id, w.sequence, w.transaction_id::text, w.event_type, w.due
      FROM snapshot s
      LEFT JOIN LATERAL (
          SELECT e.aggregate_id, e.sequence, e.transaction_id, e.event_type,
                 COALESCE((e.metadata ->> 'recorded_at')::timestamptz
                          <= now() - make_interval(secs => $2), true) AS due
            FROM events e
           WHERE e.transaction_id >= $1::text::xid8
             AND e.aggregate_type = 'run'
             AND e.event_type IN ('run.queued', 'tool_call.approved', 'tool_call.denied')
             AND NOT EXISTS (SELECT 1 FROM events l
                              WHERE l.aggregate_type = 'run' AND l.aggregate_id = e.aggregate_id
                                AND l.sequence > e.sequence)
      ) w ON true";

type CandidateRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<bool>,
);

/// The horizon of a sweep starting now.
pub(super) async fn horizon_now(pool: &PgPool) -> Result<SweepHorizon, sqlx::Error> {
    let xmin: String = sqlx::query_scalar(NOW).fetch_one(pool).await?;
    Ok(SweepHorizon(parse_xid(&xmin)?))
}

/// The runs that may wait, written since `since`, and the oldest transaction still open.
pub(super) async fn candidates(
    pool: &PgPool,
    since: SweepHorizon,
    grace: Duration,
) -> Result<(Vec<Candidate>, SweepHorizon), sqlx::Error> {
    // Not prepared once for all: a generic plan cannot know the horizon is recent and may
    // read the whole log; planned with the value, the index range is a few rows.
    let rows: Vec<CandidateRow> = sqlx::query_as(CANDIDATES)
        .bind(since.0.to_string())
        .bind(grace.as_secs_f64())
        .persistent(false)
        .fetch_all(pool)
        .await?;
    let mut xmin = since;
    let mut candidates = Vec::new();
    for (snapshot_xmin, run_id, sequence, transaction_id, event_type, due) in rows {
        xmin = SweepHorizon(parse_xid(&snapshot_xmin)?);
        let (Some(run_id), Some(sequence), Some(transaction_id), Some(event_type)) =
            (run_id, sequence, transaction_id, event_type)
        else {
            continue;
        };
        candidates.push(Candidate {
            run_id: Uuid::parse_str(&run_id).map_err(|error| sqlx::Error::Decode(error.into()))?,
            version: u64::try_from(sequence).unwrap_or_default(),
            transaction_id: parse_xid(&transaction_id)?,
            certainly_waiting: event_type == "run.queued",
            due: due.unwrap_or(true),
        });
    }
    Ok((candidates, xmin))
}

impl SweepHorizon {
    /// The horizon that also keeps the run written in `transaction_id` in view.
    pub(super) fn keeping(self, transaction_id: u64) -> Self {
        Self(self.0.min(transaction_id))
    }
}

fn parse_xid(text: &str) -> Result<u64, sqlx::Error> {
    text.parse()
        .map_err(|error| sqlx::Error::Decode(format!("transaction id {text:?}: {error}").into()))
}
