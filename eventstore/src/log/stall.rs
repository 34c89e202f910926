//! Stalls of any cause, visible from the store.
//!
//! A follower's own lag gauge only moves when it delivers something: a follower behind a held
//! gate, with NATS down, or with no process holding its lease delivers nothing and reports
//! nothing. The stall age is computed from the store instead: the age of the first committed
//! event after the follower's checkpoint, in log order and *ignoring the gate* (an event held
//! behind the gate is exactly a stall). It is 0 when the follower has delivered everything.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::RecordedEvent;
use super::lag::follower_lags;

/// Consecutive failures on one event after which a follower counts as blocked by it (fewer may
/// be a passing database error).
pub const BLOCKED_AFTER_ATTEMPTS: i32 = 3;

/// How often [`watch_stalls`] refreshes the lag gauges.
const STALL_REFRESH: Duration = Duration::from_secs(3);

/// The stall age, in seconds, of each named follower (its [`super::FollowerLag::seconds_behind`]);
/// `None` for `names` asks for every follower the database knows (with a checkpoint or a lease).
pub async fn stall_seconds(
    pool: &PgPool,
    names: Option<&[String]>,
) -> Result<Vec<(String, f64)>, sqlx::Error> {
    Ok(follower_lags(pool, names)
        .await?
        .into_iter()
        .map(|lag| (lag.name, lag.seconds_behind))
        .collect())
}

/// Publishes, for `names` every few seconds, each follower's lag as computed from the store
/// (see [`super::lag`]): `agentry_follower_stall_seconds{follower}` (seconds behind) and
/// `agentry_follower_lag_events{follower}` (events behind). Followers this process does not run,
/// or runs but cannot move, are measured all the same.
///
/// First it gives each follower a checkpoint row (at the start of the log) if it has none, so
/// a follower that never delivered anything is known to `/readyz` on every node.
pub async fn watch_stalls(pool: PgPool, names: Vec<String>, shutdown: CancellationToken) {
    let registered = sqlx::query(
        "INSERT INTO follower_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&names)
    .execute(&pool)
    .await;
    if let Err(error) = registered {
        tracing::warn!(%error, "could not register the followers' checkpoints");
    }
    while !shutdown.is_cancelled() {
        match follower_lags(&pool, Some(&names)).await {
            Ok(lags) => {
                for lag in lags {
                    metrics::gauge!("agentry_follower_stall_seconds", "follower" => lag.name.clone())
                        .set(lag.seconds_behind);
                    metrics::gauge!("agentry_follower_lag_events", "follower" => lag.name)
                        .set(lag.events_behind as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "could not compute the followers' lag"),
        }
        tokio::select! {
            () = tokio::time::sleep(STALL_REFRESH) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// A follower stopped at an event it cannot apply.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerFault {
    /// The follower (projector) name.
    pub name: String,
    /// The event it cannot get past.
    pub event_id: Uuid,
    /// What went wrong the last time.
    pub error: String,
    /// Consecutive failed attempts.
    pub attempts: i32,
}

/// Records that `name` failed to apply `event` (once more), so every node's `/readyz` can name it.
pub async fn record_fault(
    pool: &PgPool,
    name: &str,
    event: &RecordedEvent,
    error: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO follower_faults AS f
                (name, event_id, transaction_id, position, error, attempts, first_failed, last_failed)
         VALUES ($1, $2, $3::text::xid8, $4, $5, 1, now(), now())
         ON CONFLICT (name) DO UPDATE
            SET error = EXCLUDED.error, last_failed = now(),
                attempts = CASE WHEN f.event_id = EXCLUDED.event_id THEN f.attempts + 1 ELSE 1 END,
                first_failed = CASE WHEN f.event_id = EXCLUDED.event_id THEN f.first_failed ELSE now() END,
                event_id = EXCLUDED.event_id, transaction_id = EXCLUDED.transaction_id,
                position = EXCLUDED.position
         RETURNING attempts",
    )
    .bind(name)
    .bind(event.id)
    .bind(event.transaction_id.to_string())
    .bind(event.position)
    .bind(error)
    .fetch_one(pool)
    .await
}

/// Followers that failed at least `min_attempts` times in a row on an event their checkpoint has
/// not passed yet (a fault the follower got past is history, not a block).
pub async fn blocked_followers(pool: &PgPool, min_attempts: i32) -> Result<Vec<FollowerFault>, sqlx::Error> {
    let rows: Vec<(String, Uuid, String, i32)> = sqlx::query_as(
        "SELECT f.name, f.event_id, f.error, f.attempts
           FROM follower_faults f
           LEFT JOIN follower_checkpoints c ON c.name = f.name
          WHERE f.attempts >= $1
            AND (f.transaction_id, f.position) > (COALESCE(c.transaction_id, '0'::xid8), COALESCE(c.position, 0))
          ORDER BY f.name",
    )
    .bind(min_attempts)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, event_id, error, attempts)| FollowerFault {
            name,
            event_id,
            error,
            attempts,
        })
        .collect())
}
