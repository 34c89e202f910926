use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::leader::Leadership;
use super::{BusError, EventBus, Publisher};
use crate::log::{AppendSignal, Cursor, LeaseTimings, LogFollower};
use crate::{EventStore, RecordedEvent};

/// The relay's default name: its checkpoint and lease key.
pub const RELAY_NAME: &str = "relay";

/// How long an idle relay sleeps before looking for appends made by other processes.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// How often the relay saves its checkpoint, busy or caught up. Saving after every batch would
/// add a commit to every publish cycle (and under steady load the relay catches up after
/// almost every batch: the next events are still behind the log gate); what a crash
/// re-publishes in between is deduplicated by message id (the window is two minutes, far above
/// this). An idle relay saves within this and one [`IDLE_POLL`] of its last publish.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Longest pause between retries while NATS or Postgres is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Publishes every committed event to the bus, once, in log order, resuming from its checkpoint.
///
/// Exactly once in the stream comes from two halves: the checkpoint moves only after the whole
/// batch is acknowledged (so nothing is skipped), and each message id is the event id (so what
/// is re-published after a crash or a timeout is stored once). While the bus is down, appends go
/// on and the relay retries the same batch until it is back. With a shared bus, only the holder
/// of the relay's lease publishes (see [`crate::log::Lease`]).
pub struct Relay {
    pool: PgPool,
    follower: LogFollower,
    bus: EventBus,
    signal: AppendSignal,
    name: String,
    timings: LeaseTimings,
}

/// Why a leader stopped publishing.
enum Stopped {
    /// Shutdown was asked for.
    Shutdown,
    /// It can no longer prove it holds the lease; another process may be publishing.
    LostLease,
}

/// What came of publishing one batch.
enum Published {
    /// The bus stored it; carries the read-ahead of the next batch.
    Accepted(Result<Vec<Arc<RecordedEvent>>, sqlx::Error>),
    /// Not sent (again): shutdown, or the lease is no longer provably held.
    Stopped(Stopped),
}

impl Relay {
    /// A relay named `relay` reading `store`'s log (in current shapes) into `bus`, woken early
    /// by the store's appends.
    pub fn new(store: &EventStore, bus: EventBus) -> Self {
        Self {
            follower: LogFollower::new(store),
            pool: store.pool().clone(),
            bus,
            signal: store.signal().clone(),
            name: RELAY_NAME.to_owned(),
            timings: LeaseTimings::default(),
        }
    }

    /// Uses another checkpoint name (tests run several independent relays on one database).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Uses other lease durations (tests shorten them).
    pub fn with_lease_timings(mut self, timings: LeaseTimings) -> Self {
        self.timings = timings;
        self
    }

    /// Its checkpoint and lease name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until `shutdown` is cancelled. With a shared bus only one process publishes at a
    /// time (the holder of the relay's lease); the others try to take over every second,
    /// through the pool.
    pub async fn run(self, shutdown: CancellationToken) {
        let holder = Uuid::new_v4();
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let leadership = if self.bus.is_shared() {
                match Leadership::try_acquire(&self.pool, &self.name, holder, self.timings).await {
                    Ok(Some(leadership)) => leadership,
                    Ok(None) => {
                        pause(&shutdown, self.timings.renew_every).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, relay = %self.name, "relay cannot reach Postgres for its lease");
                        pause(&shutdown, backoff.next()).await;
                        continue;
                    }
                }
            } else {
                Leadership::Sole
            };
            tracing::info!(relay = %self.name, epoch = leadership.epoch(), "relay publishing");
            let outcome = self.publish_while_leader(&leadership, &shutdown).await;
            if shutdown.is_cancelled() {
                leadership.release().await;
            }
            match outcome {
                Ok(Stopped::Shutdown) => {}
                Ok(Stopped::LostLease) => {
                    tracing::warn!(relay = %self.name, "relay cannot prove its lease; stopped publishing");
                }
                Err(error) => {
                    tracing::warn!(%error, relay = %self.name, "relay interrupted; resuming from its checkpoint");
                    pause(&shutdown, backoff.next()).await;
                }
            }
        }
    }

    async fn publish_while_leader(
        &self,
        leadership: &Leadership,
        shutdown: &CancellationToken,
    ) -> Result<Stopped, sqlx::Error> {
        let mut saved = crate::log::load_checkpoint(&self.pool, &self.name).await?;
        let mut cursor = saved;
        let mut waiter = self.signal.subscribe();
        let mut last_save = Instant::now();
        let mut prefetched = None;
        while !shutdown.is_cancelled() {
            let batch = match prefetched.take() {
                Some(batch) => batch,
                None => self.follower.read_after_shared(cursor).await?,
            };
            let Some(last) = batch.last().map(|event| event.cursor()) else {
                if saved != cursor && last_save.elapsed() >= CHECKPOINT_EVERY {
                    saved = self.save(leadership, saved, cursor).await?;
                    last_save = Instant::now();
                }
                if !leadership.is_valid() {
                    return Ok(Stopped::LostLease);
                }
                tokio::select! {
                    () = waiter.wait(IDLE_POLL) => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            };
            let next = match self
                .publish_until_accepted(leadership, &batch, last, shutdown)
                .await
            {
                Published::Accepted(next) => next,
                Published::Stopped(stopped) => {
                    // What was acknowledged before this batch is kept, if the lease still allows.
                    if saved != cursor && leadership.is_valid() {
                        self.save(leadership, saved, cursor).await?;
                    }
                    return Ok(stopped);
                }
            };
            // A failed read ahead is simply read again at the top of the loop.
            prefetched = next.ok();
            record_lag(&self.name, &batch);
            cursor = last;
            if last_save.elapsed() >= CHECKPOINT_EVERY {
                saved = self.save(leadership, saved, cursor).await?;
                last_save = Instant::now();
            }
        }
        if saved != cursor {
            self.save(leadership, saved, cursor).await?;
        }
        Ok(Stopped::Shutdown)
    }

    /// Retries the same batch (same message ids) until the bus takes it, checking just before
    /// every attempt that this process still holds the lease.
    ///
    /// While the broker stores the batch, the events after it are read, so the next cycle
    /// starts at once: that read ahead comes back with the acceptance.
    async fn publish_until_accepted(
        &self,
        leadership: &Leadership,
        batch: &[Arc<RecordedEvent>],
        last: Cursor,
        shutdown: &CancellationToken,
    ) -> Published {
        let mut backoff = Backoff::default();
        loop {
            if !leadership.is_valid() {
                return Published::Stopped(Stopped::LostLease);
            }
            let still_leading = || leadership.is_valid();
            let publisher = Publisher {
                epoch: leadership.epoch(),
                still_leading: &still_leading,
            };
            let outcome = match self.bus.publish(batch, publisher).await {
                Ok(pending) => {
                    let (confirmed, next) =
                        tokio::join!(pending.confirmed(), self.follower.read_after_shared(last));
                    confirmed.map(|()| next)
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(next) => return Published::Accepted(next),
                Err(BusError::LeaseLost) => return Published::Stopped(Stopped::LostLease),
                Err(error) => {
                    metrics::counter!("agentry_relay_publish_failures_total").increment(1);
                    tracing::warn!(%error, relay = %self.name, events = batch.len(), "publish failed; retrying");
                }
            }
            if shutdown.is_cancelled() {
                return Published::Stopped(Stopped::Shutdown);
            }
            pause(shutdown, backoff.next()).await;
        }
    }

    /// Moves the checkpoint. A refusal means another process holds the lease now (or moved the
    /// checkpoint): this one must stop, and nothing acknowledged is lost (the new leader
    /// re-publishes from the checkpoint, deduplicated by message id). Errors are returned, not
    /// swallowed: the relay logs them, counts them and resumes from the saved checkpoint.
    async fn save(
        &self,
        leadership: &Leadership,
        saved: Cursor,
        cursor: Cursor,
    ) -> Result<Cursor, sqlx::Error> {
        let outcome = leadership
            .save_checkpoint(&self.pool, &self.name, saved, cursor)
            .await;
        if !matches!(outcome, Ok(true)) {
            metrics::counter!("agentry_checkpoint_save_failures_total", "follower" => self.name.clone())
                .increment(1);
        }
        match outcome? {
            true => Ok(cursor),
            false => Err(sqlx::Error::Protocol(format!(
                "the checkpoint of {} was refused: another process leads or moved it",
                self.name
            ))),
        }
    }
}

/// The relay's lag: a histogram of every event's age when published, and the last one's age
/// as the follower's gauge (moved only when something is delivered; a stall shows in
/// `agentry_follower_stall_seconds`, computed from the store).
fn record_lag(name: &str, batch: &[Arc<RecordedEvent>]) {
    let now = Utc::now();
    let lag = |event: &RecordedEvent| event.age_seconds(now);
    for seconds in batch.iter().filter_map(|event| lag(event)) {
        metrics::histogram!("agentry_relay_lag_seconds").record(seconds);
    }
    metrics::counter!("agentry_relay_published_total").increment(batch.len() as u64);
    if let Some(seconds) = batch.last().and_then(|event| lag(event)) {
        metrics::gauge!("agentry_follower_lag_seconds", "follower" => name.to_owned()).set(seconds);
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = shutdown.cancelled() => {}
    }
}

/// Doubling pauses from 50 ms up to [`MAX_BACKOFF`].
#[derive(Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let pause = Duration::from_millis(50).saturating_mul(1 << self.attempts.min(6));
        self.attempts += 1;
        pause.min(MAX_BACKOFF)
    }
}
