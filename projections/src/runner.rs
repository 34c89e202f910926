use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use commands::log::{announce_progress, load_checkpoint, save_checkpoint};
use commands::{AppendSignal, LogFollower, RecordedEvent};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::Projector;

/// How long an idle runner waits before looking for appends from other processes.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Keeps one projector up to date with the log.
pub struct ProjectionRunner {
    pool: PgPool,
    follower: LogFollower,
    signal: AppendSignal,
    projector: Arc<dyn Projector>,
}

impl ProjectionRunner {
    /// A runner for `projector` over `pool`'s log, woken early by `signal`.
    pub fn new(pool: PgPool, signal: AppendSignal, projector: Arc<dyn Projector>) -> Self {
        Self {
            follower: LogFollower::new(pool.clone()).with_batch_size(500),
            pool,
            signal,
            projector,
        }
    }

    /// Runs until `shutdown`; errors are logged and retried from the last checkpoint.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut waiter = self.signal.subscribe();
        let name = self.projector.name();
        while !shutdown.is_cancelled() {
            match self.step().await {
                Ok(true) => {}
                Ok(false) => {
                    metrics::gauge!("agentry_follower_lag_seconds", "follower" => name).set(0.0);
                    tokio::select! {
                        () = waiter.wait(IDLE_POLL) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, projector = name, "projector batch failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Applies one batch with its checkpoint in one transaction; `false` when caught up.
    pub async fn step(&self) -> Result<bool, sqlx::Error> {
        let name = self.projector.name();
        let from = load_checkpoint(&self.pool, name).await?;
        let batch = self.follower.read_after(from).await?;
        let Some(to) = batch.last().map(RecordedEvent::cursor) else {
            return Ok(false);
        };
        let mut transaction = self.pool.begin().await?;
        for event in &batch {
            self.projector.apply(&mut transaction, event).await?;
        }
        if !save_checkpoint(&mut *transaction, name, from, to).await? {
            // Another runner applied this batch first; ours rolls back untouched.
            transaction.rollback().await?;
            return Ok(true);
        }
        announce_progress(&mut *transaction, name, to).await?;
        transaction.commit().await?;
        record_lag(name, &batch);
        Ok(true)
    }
}

fn record_lag(name: &'static str, batch: &[RecordedEvent]) {
    if let Some(seconds) = batch.last().and_then(|event| event.age_seconds(Utc::now())) {
        metrics::gauge!("agentry_follower_lag_seconds", "follower" => name).set(seconds);
    }
    metrics::counter!("agentry_projected_events_total", "projector" => name).increment(batch.len() as u64);
}
