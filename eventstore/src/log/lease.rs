//! One runner per follower across every process sharing the database: a lease that expires.
//!
//! A session advisory lock (what the relay used before) is held until the server notices the
//! client is gone, which after a power loss or a partition is the kernel's TCP keepalive (hours),
//! and it needs a connection of its own per waiting process. A lease is a row
//! (`follower_leases`) with an expiry on the database clock: the holder renews it about every
//! second through the pool, a standby takes it over once it has expired, and every takeover
//! bumps the epoch.
//!
//! The holder stops working as soon as it cannot prove the lease is still valid: it measures,
//! with the monotonic clock, the time since it *sent* its last successful renewal, and treats
//! the lease as lost well before the database would let anyone else take it. A process woken
//! from SIGSTOP sees a huge elapsed time and stops before its next batch. The checkpoint
//! statement checks the holder and epoch too ([`save_checkpoint_as`](super::save_checkpoint_as)),
//! so a paused holder can never move a checkpoint after a takeover.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// How long a lease lasts after its last renewal, on the database clock.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often the holder renews its lease, and a standby tries to take it over.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(1);
/// Part of the TTL the holder never uses: time between its check and the work it guards
/// (sending a batch), and clock-rate differences.
const SAFETY_MARGIN: Duration = Duration::from_millis(1_500);

/// Durations of a lease; [`Default`] is [`LEASE_TTL`] and [`LEASE_RENEW_EVERY`].
#[derive(Clone, Copy, Debug)]
pub struct LeaseTimings {
    /// How long the lease lasts after a renewal.
    pub ttl: Duration,
    /// How often it is renewed (and a takeover attempted).
    pub renew_every: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            ttl: LEASE_TTL,
            renew_every: LEASE_RENEW_EVERY,
        }
    }
}

impl LeaseTimings {
    /// How long after sending a renewal the holder may still act on it.
    fn usable(&self) -> Duration {
        self.ttl.saturating_sub(SAFETY_MARGIN).max(self.ttl / 2)
    }
}

/// What a checkpoint move must still find in the lease row: who holds it, since which takeover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseClaim {
    /// The holder: random per process and follower.
    pub holder: Uuid,
    /// The takeover this holder won.
    pub epoch: i64,
}

/// A held lease; renewed in the background until dropped or released.
pub struct Lease {
    pool: PgPool,
    name: String,
    claim: LeaseClaim,
    state: Arc<LeaseState>,
    _renewer: DropGuard,
}

struct LeaseState {
    /// Monotonic deadline after which the holder must assume the lease is gone.
    usable_until: Mutex<Instant>,
    /// The database said another holder (or epoch) owns the row.
    lost: AtomicBool,
}

impl Lease {
    /// Takes the lease `name` for `holder` if it is free, expired, or already this holder's
    /// (a new epoch either way); `None` while another holder's lease runs.
    pub async fn try_acquire(
        pool: &PgPool,
        name: &str,
        holder: Uuid,
        timings: LeaseTimings,
    ) -> Result<Option<Self>, sqlx::Error> {
        let sent = Instant::now();
        let epoch: Option<i64> = sqlx::query_scalar(
            "INSERT INTO follower_leases AS l (name, holder, epoch, expires_at)
             VALUES ($1, $2, 1, now() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE
                SET holder = EXCLUDED.holder, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
              WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
             RETURNING epoch",
        )
        .bind(name)
        .bind(holder)
        .bind(timings.ttl.as_secs_f64())
        .fetch_optional(pool)
        .await?;
        let Some(epoch) = epoch else { return Ok(None) };
        let state = Arc::new(LeaseState {
            usable_until: Mutex::new(sent + timings.usable()),
            lost: AtomicBool::new(false),
        });
        let claim = LeaseClaim { holder, epoch };
        let stop = CancellationToken::new();
        tokio::spawn(renew(
            pool.clone(),
            name.to_owned(),
            claim,
            timings,
            Arc::clone(&state),
            stop.clone(),
        ));
        Ok(Some(Self {
            pool: pool.clone(),
            name: name.to_owned(),
            claim,
            state,
            _renewer: stop.drop_guard(),
        }))
    }

    /// Whether the holder may still act: the database has not said otherwise, and the last
    /// successful renewal was sent recently enough (monotonic clock, so time spent stopped counts).
    pub fn is_valid(&self) -> bool {
        !self.state.lost.load(Ordering::Acquire)
            && self
                .state
                .usable_until
                .lock()
                .is_ok_and(|until| Instant::now() < *until)
    }

    /// The holder and epoch a checkpoint move must carry.
    pub fn claim(&self) -> LeaseClaim {
        self.claim
    }

    /// The follower this lease is for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ends the lease now (on shutdown), so a standby takes over at its next attempt instead
    /// of waiting for the expiry.
    pub async fn release(self) {
        let released = sqlx::query(
            "UPDATE follower_leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(&self.name)
        .bind(self.claim.holder)
        .bind(self.claim.epoch)
        .execute(&self.pool)
        .await;
        if let Err(error) = released {
            tracing::warn!(%error, follower = %self.name, "lease not released; it will expire");
        }
    }
}

/// Renews every `renew_every` until stopped or the row names someone else. A failed renewal
/// (database unreachable) is retried; meanwhile the lease's usable time runs out by itself.
async fn renew(
    pool: PgPool,
    name: String,
    claim: LeaseClaim,
    timings: LeaseTimings,
    state: Arc<LeaseState>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(timings.renew_every) => {}
            () = stop.cancelled() => return,
        }
        let sent = Instant::now();
        let renewed = sqlx::query(
            "UPDATE follower_leases SET expires_at = now() + make_interval(secs => $4)
              WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(&name)
        .bind(claim.holder)
        .bind(claim.epoch)
        .bind(timings.ttl.as_secs_f64())
        .execute(&pool)
        .await;
        match renewed {
            Ok(result) if result.rows_affected() == 1 => {
                if let Ok(mut until) = state.usable_until.lock() {
                    *until = sent + timings.usable();
                }
            }
            Ok(_) => {
                state.lost.store(true, Ordering::Release);
                tracing::warn!(follower = %name, epoch = claim.epoch, "lease taken over by another process");
                return;
            }
            Err(error) => tracing::warn!(%error, follower = %name, "lease not renewed; retrying"),
        }
    }
}
