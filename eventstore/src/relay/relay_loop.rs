use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::EventBus;
use super::leader::{Leadership, lock_key};
use crate::RecordedEvent;
use crate::log::{AppendSignal, Cursor, LogFollower, load_checkpoint, save_checkpoint};

/// How long an idle relay sleeps before looking for appends made by other processes.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// How often a leader checks that its lock connection is alive.
const LEADERSHIP_CHECK: Duration = Duration::from_secs(1);
/// How often a busy relay saves its checkpoint. Saving after every batch would add a commit to
/// every publish cycle; what a crash re-publishes in between is deduplicated by message id
/// (the window is two minutes, far above this).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Longest pause between retries while NATS or Postgres is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Publishes every committed event to the bus, once, in log order, resuming from its checkpoint.
///
/// Exactly once in the stream comes from two halves: the checkpoint moves only after the whole
/// batch is acknowledged (so nothing is skipped), and each message id is the event id (so what
/// is re-published after a crash or a timeout is stored once). While the bus is down, appends go
/// on and the relay retries the same batch until it is back.
pub struct Relay {
    pool: PgPool,
    follower: LogFollower,
    bus: EventBus,
    signal: AppendSignal,
    name: String,
}

impl Relay {
    /// A relay named `relay` reading `pool`'s log into `bus`, woken early by `signal`.
    pub fn new(pool: PgPool, bus: EventBus, signal: AppendSignal) -> Self {
        Self {
            follower: LogFollower::new(pool.clone()),
            pool,
            bus,
            signal,
            name: "relay".to_owned(),
        }
    }

    /// Uses another checkpoint name (tests run several independent relays on one database).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Runs until `shutdown` is cancelled. With a shared bus only one process publishes at a
    /// time (an advisory lock); the others wait to take over.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let leadership = if self.bus.is_shared() {
                match Leadership::try_acquire(&self.pool, lock_key(&self.name)).await {
                    Ok(Some(leadership)) => Some(leadership),
                    Ok(None) => {
                        pause(&shutdown, Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, relay = %self.name, "relay cannot reach Postgres for its lock");
                        pause(&shutdown, backoff.next()).await;
                        continue;
                    }
                }
            } else {
                None
            };
            tracing::info!(relay = %self.name, "relay publishing");
            if let Err(error) = self.publish_while_leader(leadership, &shutdown).await {
                tracing::warn!(%error, relay = %self.name, "relay interrupted; resuming from its checkpoint");
                pause(&shutdown, backoff.next()).await;
            }
        }
    }

    async fn publish_while_leader(
        &self,
        mut leadership: Option<Leadership>,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let mut saved = load_checkpoint(&self.pool, &self.name).await?;
        let mut cursor = saved;
        let mut waiter = self.signal.subscribe();
        let mut last_check = Instant::now();
        let mut last_save = Instant::now();
        let mut prefetched = None;
        while !shutdown.is_cancelled() {
            if let Some(leadership) = leadership.as_mut()
                && last_check.elapsed() > LEADERSHIP_CHECK
            {
                if !leadership.is_held().await {
                    return Err(sqlx::Error::PoolClosed);
                }
                last_check = Instant::now();
            }
            let batch = match prefetched.take() {
                Some(batch) => batch,
                None => self.follower.read_after(cursor).await?,
            };
            let Some(last) = batch.last().map(RecordedEvent::cursor) else {
                metrics::gauge!("agentry_follower_lag_seconds", "follower" => self.name.clone()).set(0.0);
                if saved != cursor {
                    saved = self.save(saved, cursor).await;
                }
                tokio::select! {
                    () = waiter.wait(IDLE_POLL) => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            };
            let Some(next) = self.publish_until_accepted(&batch, last, shutdown).await else {
                return Ok(());
            };
            // A failed read ahead is simply read again at the top of the loop.
            prefetched = next.ok();
            record_lag(&self.name, &batch);
            cursor = last;
            if last_save.elapsed() >= CHECKPOINT_EVERY {
                saved = self.save(saved, cursor).await;
                last_save = Instant::now();
            }
        }
        if saved != cursor {
            self.save(saved, cursor).await;
        }
        Ok(())
    }

    /// Retries the same batch (same message ids) until the bus takes it; `None` on shutdown.
    ///
    /// While the broker stores the batch, the events after it are read, so the next cycle
    /// starts at once: that read ahead is what this returns.
    async fn publish_until_accepted(
        &self,
        batch: &[RecordedEvent],
        last: Cursor,
        shutdown: &CancellationToken,
    ) -> Option<Result<Vec<RecordedEvent>, sqlx::Error>> {
        let mut backoff = Backoff::default();
        loop {
            let outcome = match self.bus.publish(batch).await {
                Ok(pending) => {
                    let (confirmed, next) = tokio::join!(pending.confirmed(), self.follower.read_after(last));
                    confirmed.map(|()| next)
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(next) => return Some(next),
                Err(error) => {
                    metrics::counter!("agentry_relay_publish_failures_total").increment(1);
                    tracing::warn!(%error, relay = %self.name, events = batch.len(), "publish failed; retrying");
                }
            }
            if shutdown.is_cancelled() {
                return None;
            }
            pause(shutdown, backoff.next()).await;
        }
    }

    /// Moves the checkpoint; on failure keeps the old one, so at worst a restart re-publishes
    /// (deduplicated by message id) and never skips.
    async fn save(&self, saved: Cursor, cursor: Cursor) -> Cursor {
        match save_checkpoint(&self.pool, &self.name, saved, cursor).await {
            Ok(true) => cursor,
            Ok(false) => {
                tracing::warn!(relay = %self.name, "relay checkpoint moved by another process");
                load_checkpoint(&self.pool, &self.name).await.unwrap_or(saved)
            }
            Err(error) => {
                tracing::warn!(%error, relay = %self.name, "relay checkpoint not saved; will retry");
                saved
            }
        }
    }
}

fn record_lag(name: &str, batch: &[RecordedEvent]) {
    let now = Utc::now();
    let lag = |event: &RecordedEvent| event.age_seconds(now);
    for seconds in batch.iter().filter_map(lag) {
        metrics::histogram!("agentry_relay_lag_seconds").record(seconds);
    }
    metrics::counter!("agentry_relay_published_total").increment(batch.len() as u64);
    if let Some(seconds) = batch.last().and_then(lag) {
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
