use std::borrow::Borrow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use eventstore::log::{
    FollowerProgress, Lease, LeaseClaim, LeaseTimings, announce_progress, load_checkpoint, record_fault,
    save_checkpoint, save_checkpoint_announced,
};
use eventstore::{AppendSignal, Cursor, EventStore, LogFollower, RecordedEvent};
use sqlx::{Acquire, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Projector;

/// How long an idle runner waits before looking for appends from other processes.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long a caught-up projector lets appends gather after it is woken, before it reads them.
/// Every append wakes every projector, and each step is a log read and a commit: woken per
/// append, the projectors made about 2/3 of a run's transactions. Gathering 5 ms took a lone
/// run from 131 to 85–89 transactions and its step overhead from 3.2–3.8 to 2.7–3.0 ms p50
/// (BENCHMARKS.md, "Group commit…", agent runs), at the price of read models trailing the log
/// by up to 5 ms more. A busy projector is held to its [`pace`](Projector::pace) instead.
const GATHER_AFTER_WAKE: Duration = Duration::from_millis(5);
/// Most events one batch applies, one at a time.
const BATCH_EVENTS: usize = 50;
/// Most events one batch of a batched projector folds at once: its reads happen before its
/// writes, so its transaction holds the log gate only for the few statements that write.
const BATCHED_PROJECTOR_EVENTS: usize = 1000;
/// How long a batch keeps applying events before it commits what it has. Its transaction holds
/// the log gate for every follower (the relay, the other projectors) from its first write to
/// its commit, so batches stay this short whatever the events cost.
const BATCH_BUDGET: Duration = Duration::from_millis(5);
/// How long a runner that reports to this process's [`FollowerProgress`] may leave its checkpoint
/// behind events it has nothing to fold (it saves the move with its next batch that folds
/// something, or once this has passed). Every append wakes every projector, and most projectors
/// fold none of most appends: saved at each wake, these moves were a third of a statement per
/// conversation created (four projectors at their 5 ms pace; BENCHMARKS.md, "One log read per
/// process"). Readers in this process see the runner's position at once; a reader on another
/// node waits about this much longer (and one pace) for a view whose follower had nothing to fold.
const SKIP_SAVE_EVERY: Duration = Duration::from_millis(50);
/// First pause after a failed batch; it doubles while the same failure repeats.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause between retries of a failing batch.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Keeps one projector up to date with the log: on one process at a time, the holder of the
/// projector's lease (the same lease as the relay's, under the projector's name).
pub struct ProjectionRunner {
    pool: PgPool,
    follower: LogFollower,
    signal: AppendSignal,
    projector: Arc<dyn Projector>,
    timings: LeaseTimings,
    /// Whether the last batch failed on an event (the `agentry_projector_blocked` gauge is 1).
    failing: AtomicBool,
    /// The projector's [`pace`](Projector::pace).
    pace: Duration,
    /// This process's progress board: with one, moves past events the projector does not fold
    /// are reported there at once and saved at most every `skip_save_every`.
    progress: Option<FollowerProgress>,
    /// [`SKIP_SAVE_EVERY`], unless a test asks otherwise.
    skip_save_every: Duration,
}

/// Where a runner stands: how far it has read and applied the log, and where its saved
/// checkpoint is (behind that only by events the projector does not fold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    passed: Cursor,
    saved: Cursor,
}

impl Position {
    fn saved_at(cursor: Cursor) -> Self {
        Self {
            passed: cursor,
            saved: cursor,
        }
    }
}

/// What one step did.
enum Step {
    /// A batch was applied (or skipped) up to `to.passed`; `full` when the read was full (the
    /// projector is behind and goes on at once).
    Applied { to: Position, full: bool },
    /// Nothing to apply after this position.
    CaughtUp(Position),
    /// The checkpoint was not ours to move (another runner, or a lost lease); rolled back.
    NotOurs,
}

impl ProjectionRunner {
    /// A runner for `projector` over `store`'s log (in current shapes), woken early by the
    /// store's appends.
    pub fn new(store: &EventStore, projector: Arc<dyn Projector>) -> Self {
        Self {
            follower: LogFollower::new(store).with_batch_size(batch_size(projector.as_ref())),
            pool: store.pool().clone(),
            signal: store.signal().clone(),
            timings: LeaseTimings::default(),
            failing: AtomicBool::new(false),
            pace: projector.pace(),
            projector,
            progress: None,
            skip_save_every: SKIP_SAVE_EVERY,
        }
    }

    /// Reports moves past events the projector does not fold to `progress` at once, and saves
    /// them less often ([`SKIP_SAVE_EVERY`]). The process's own reads wait on `progress`.
    pub fn with_progress(mut self, progress: FollowerProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Saves moves past ignored events at most every `every` instead of [`SKIP_SAVE_EVERY`]
    /// (tests lengthen it to see what the progress board alone does).
    pub fn with_skip_save_every(mut self, every: Duration) -> Self {
        self.skip_save_every = every;
        self
    }

    /// Uses other lease durations (tests shorten them).
    pub fn with_lease_timings(mut self, timings: LeaseTimings) -> Self {
        self.timings = timings;
        self
    }

    /// Runs until `shutdown`: takes the projector's lease when it is free (trying every second
    /// while another process holds it) and applies batches while it can prove it holds it.
    /// Errors are logged and retried from the last checkpoint.
    pub async fn run(self, shutdown: CancellationToken) {
        let holder = Uuid::new_v4();
        let name = self.projector.name();
        while !shutdown.is_cancelled() {
            let lease = match Lease::try_acquire(&self.pool, name, holder, self.timings).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    pause(&shutdown, self.timings.renew_every).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, projector = name, "projector cannot reach Postgres for its lease");
                    pause(&shutdown, RETRY_PAUSE).await;
                    continue;
                }
            };
            tracing::info!(projector = name, epoch = lease.claim().epoch, "projector running");
            self.run_while_leader(&lease, &shutdown).await;
            if shutdown.is_cancelled() {
                lease.release().await;
            }
        }
    }

    async fn run_while_leader(&self, lease: &Lease, shutdown: &CancellationToken) {
        let name = self.projector.name();
        let mut waiter = self.signal.subscribe();
        let mut retry = RETRY_PAUSE;
        // Where the runner stands (read, and saved), kept between steps: under the lease only
        // this runner moves the checkpoint, so it is read once per term (and after a failure)
        // instead of every step.
        // Anyone else's move (a rebuild's switch) makes the next save refuse, and the term end.
        let mut cursor = None;
        let mut last_save = Instant::now();
        while !shutdown.is_cancelled() {
            if !lease.is_valid() {
                tracing::warn!(projector = name, "projector cannot prove its lease; standing by");
                return;
            }
            let started = tokio::time::Instant::now();
            let defer_skips = self.progress.is_some() && last_save.elapsed() < self.skip_save_every;
            let saved_before = cursor.map(|position: Position| position.saved);
            let step = self.step_as(Some(lease.claim()), cursor, defer_skips).await;
            if let Ok(Step::Applied { to, .. } | Step::CaughtUp(to)) = &step
                && saved_before != Some(to.saved)
            {
                last_save = Instant::now();
            }
            match step {
                Ok(Step::Applied { to, full }) => {
                    cursor = Some(to);
                    retry = RETRY_PAUSE;
                    if !full {
                        pause_until(shutdown, started + self.pace).await;
                    }
                }
                Ok(Step::CaughtUp(at)) => {
                    cursor = Some(at);
                    retry = RETRY_PAUSE;
                    // An unsaved move is saved by the first step after its interval.
                    let idle = if at.passed > at.saved {
                        (last_save + self.skip_save_every)
                            .saturating_duration_since(Instant::now())
                            .min(IDLE_POLL)
                    } else {
                        IDLE_POLL
                    };
                    tokio::select! {
                        () = waiter.wait(idle) => {}
                        () = shutdown.cancelled() => {}
                    }
                    let gathered = tokio::time::Instant::now() + GATHER_AFTER_WAKE;
                    pause_until(shutdown, gathered.max(started + self.pace)).await;
                }
                Ok(Step::NotOurs) => {
                    tracing::warn!(
                        projector = name,
                        "projector checkpoint refused: another process took over"
                    );
                    return;
                }
                Err(error) => {
                    cursor = None;
                    tracing::warn!(%error, projector = name, "projector batch failed; retrying");
                    pause(shutdown, retry).await;
                    retry = (retry * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }

    /// Applies one batch with its checkpoint in one transaction, without a lease (tools and
    /// tests stepping by hand; two such runners are kept apart by the checkpoint's
    /// compare-and-set). `false` when caught up.
    pub async fn step(&self) -> Result<bool, sqlx::Error> {
        Ok(!matches!(
            self.step_as(None, None, false).await?,
            Step::CaughtUp(_)
        ))
    }

    /// One batch: at most [`BATCH_EVENTS`] events, and no more once [`BATCH_BUDGET`] is spent,
    /// applied with the checkpoint in one transaction. `known` is where the checkpoint stands
    /// when the caller knows (else it is read). The events come from the process's shared
    /// tail of the log, most often without a read of their own (the relay or another
    /// projector read them); the writes go over one connection, taken only when there is
    /// something to write (each acquire from the pool costs a round trip: its liveness ping).
    ///
    /// With `defer_skips` (under a lease only), a batch holding nothing the projector folds is
    /// not saved but reported to this process's progress board; otherwise such a batch, or an
    /// empty read while a move is unsaved, saves the checkpoint where the runner has got to.
    async fn step_as(
        &self,
        claim: Option<LeaseClaim>,
        known: Option<Position>,
        defer_skips: bool,
    ) -> Result<Step, sqlx::Error> {
        let name = self.projector.name();
        let at = match known {
            Some(position) => position,
            None => Position::saved_at(load_checkpoint(&self.pool, name).await?),
        };
        // Shared with the process's other followers: made this runner's own below only when
        // the projector folds something in it. A read that is all skips copies nothing
        // (the identity, usage and conversation views skip most of a run's events).
        let mut batch = self.follower.read_after_shared(at.passed).await?;
        if batch.is_empty() {
            return match claim {
                Some(claim) if !defer_skips && at.passed > at.saved => self.save_skips(at, claim, &[]).await,
                _ => Ok(Step::CaughtUp(at)),
            };
        }
        let limit = batch_size(self.projector.as_ref());
        let full = batch.len() >= limit;
        batch.truncate(whole_transactions(&batch, limit));
        if let Some(claim) = claim
            && !batch.iter().any(|event| self.projector.folds(event))
        {
            let to = batch.last().map_or(at.passed, |event| event.cursor());
            let moved = Position {
                passed: to,
                saved: at.saved,
            };
            if defer_skips && let Some(progress) = &self.progress {
                progress.passed(name, to);
                record_lag(name, &batch);
                return Ok(Step::Applied { to: moved, full });
            }
            return match self.save_skips(moved, claim, &batch).await? {
                Step::CaughtUp(to) => Ok(Step::Applied { to, full }),
                other => Ok(other),
            };
        }
        // Moved out where this runner alone holds them (a read of its own, behind the tail).
        let batch: Vec<RecordedEvent> = batch.into_iter().map(Arc::unwrap_or_clone).collect();
        let from = at.saved;
        let mut connection = self.pool.acquire().await?;
        let mut transaction = connection.begin().await?;
        let started = Instant::now();
        let mut applied = 0;
        if self.projector.batched() {
            if let Err(error) = self.projector.apply_batch(&mut transaction, &batch).await {
                drop(transaction);
                let culprit = self.culprit(&batch).await;
                self.report_failure(culprit, &error).await;
                return Err(error);
            }
            applied = batch.len();
        }
        for (index, event) in batch.iter().enumerate().skip(applied) {
            // A batch ends only between two writers' transactions: a command's events become
            // visible together (a user registered and promoted in one append is never seen as
            // a plain user), as they were committed.
            let continues_transaction = index > 0 && batch[index - 1].transaction_id == event.transaction_id;
            if applied > 0 && !continues_transaction && started.elapsed() >= BATCH_BUDGET {
                break;
            }
            if let Err(error) = self.projector.apply(&mut transaction, event).await {
                drop(transaction);
                self.report_failure(event, &error).await;
                return Err(error);
            }
            applied += 1;
        }
        let applied = &batch[..applied];
        let to = applied.last().map_or(at.passed, RecordedEvent::cursor);
        let saved = match claim {
            Some(claim) => save_checkpoint_announced(&mut *transaction, name, from, to, claim).await?,
            None => {
                let saved = save_checkpoint(&mut *transaction, name, from, to).await?;
                if saved {
                    announce_progress(&mut *transaction, name, to).await?;
                }
                saved
            }
        };
        if !saved {
            // Another runner applied this batch first, or took the lease; ours rolls back untouched.
            transaction.rollback().await?;
            return Ok(Step::NotOurs);
        }
        transaction.commit().await?;
        self.got_past_failure();
        record_lag(name, applied);
        Ok(Step::Applied {
            to: Position::saved_at(to),
            full: full || applied.len() < batch.len(),
        })
    }

    /// Saves the checkpoint at `at.passed`, past events the projector does not fold (`skipped`
    /// is the read that got there, if any): one statement, no transaction. Answers
    /// `CaughtUp` at the saved position, or `NotOurs`.
    async fn save_skips(
        &self,
        at: Position,
        claim: LeaseClaim,
        skipped: &[Arc<RecordedEvent>],
    ) -> Result<Step, sqlx::Error> {
        let name = self.projector.name();
        let mut connection = self.pool.acquire().await?;
        if !save_checkpoint_announced(&mut *connection, name, at.saved, at.passed, claim).await? {
            return Ok(Step::NotOurs);
        }
        self.got_past_failure();
        record_lag(name, skipped);
        Ok(Step::CaughtUp(Position::saved_at(at.passed)))
    }

    /// Clears the blocked gauge once a batch commits after a failed one.
    fn got_past_failure(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            metrics::gauge!("agentry_projector_blocked", "projector" => self.projector.name()).set(0.0);
            tracing::info!(
                projector = self.projector.name(),
                "projector got past the event it could not apply"
            );
        }
    }

    /// The event of a failed batch that fails on its own: the batch's events applied one at a
    /// time in a transaction that is rolled back (only on this failure path), so the fault
    /// names the poison event rather than the batch's first.
    async fn culprit<'b>(&self, batch: &'b [RecordedEvent]) -> &'b RecordedEvent {
        let Ok(mut transaction) = self.pool.begin().await else {
            return &batch[0];
        };
        for event in batch {
            if self
                .projector
                .apply_batch(&mut transaction, std::slice::from_ref(event))
                .await
                .is_err()
            {
                return event;
            }
        }
        &batch[0]
    }

    /// Makes a failed event loud: an error log line naming it, a metric, and a fault row that
    /// every node's `/readyz` reads. The event's payload is never logged (it may hold secrets).
    async fn report_failure(&self, event: &RecordedEvent, error: &sqlx::Error) {
        let name = self.projector.name();
        self.failing.store(true, Ordering::Release);
        metrics::counter!("agentry_projector_failures_total", "projector" => name).increment(1);
        metrics::gauge!("agentry_projector_blocked", "projector" => name).set(1.0);
        let attempts = record_fault(&self.pool, name, event, &error.to_string()).await;
        if let Err(fault_error) = &attempts {
            tracing::warn!(error = %fault_error, projector = name, "could not record the projector's fault");
        }
        tracing::error!(
            projector = name,
            event_id = %event.id,
            event_type = %event.event_type,
            position = event.position,
            attempts = attempts.ok(),
            %error,
            "projector cannot apply an event; it holds its checkpoint and retries"
        );
    }
}

/// How many events one read of the log holds for `projector`.
fn batch_size(projector: &dyn Projector) -> usize {
    if projector.batched() {
        BATCHED_PROJECTOR_EVENTS
    } else {
        BATCH_EVENTS
    }
}

fn record_lag<E: Borrow<RecordedEvent>>(name: &'static str, batch: &[E]) {
    if let Some(seconds) = batch
        .last()
        .and_then(|event| event.borrow().age_seconds(Utc::now()))
    {
        metrics::gauge!("agentry_follower_lag_seconds", "follower" => name).set(seconds);
    }
    metrics::counter!("agentry_projected_events_total", "projector" => name).increment(batch.len() as u64);
}

async fn pause_until(shutdown: &CancellationToken, deadline: tokio::time::Instant) {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => {}
        () = shutdown.cancelled() => {}
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    pause_until(shutdown, tokio::time::Instant::now() + duration).await;
}

/// How many events of a read batch to use so that it ends on a transaction boundary: a full
/// read (`limit` events) may have cut its last transaction short, so that transaction's events
/// wait for the next read, unless they are all the batch holds (one command of more than
/// `limit` events is then applied in parts, the only case that is).
pub(crate) fn whole_transactions<E: Borrow<RecordedEvent>>(batch: &[E], limit: usize) -> usize {
    if batch.len() < limit {
        return batch.len();
    }
    eventstore::log::whole_transactions(batch)
}

#[cfg(test)]
mod tests {
    use eventstore::RecordedEvent;

    use super::whole_transactions;
    use crate::test_events::recorded;

    fn event(transaction_id: u64, position: i64) -> RecordedEvent {
        RecordedEvent {
            position,
            transaction_id,
            aggregate_id: "u".into(),
            sequence: position,
            ..recorded("user", "user.registered")
        }
    }

    #[test]
    fn a_full_read_leaves_its_last_transaction_for_the_next_batch() {
        let batch = [event(7, 1), event(8, 2), event(8, 3)];
        assert_eq!(whole_transactions(&batch, 3), 1);
    }

    #[test]
    fn a_read_that_is_not_full_is_used_whole() {
        let batch = [event(7, 1), event(8, 2)];
        assert_eq!(whole_transactions(&batch, 3), 2);
    }

    #[test]
    fn one_transaction_larger_than_a_read_is_used_whole() {
        let batch = [event(8, 1), event(8, 2), event(8, 3)];
        assert_eq!(whole_transactions(&batch, 3), 3);
    }
}
