//! How far behind the log each follower is, read from the store.
//!
//! A follower's own figures move only when it delivers something; one that is stuck on an
//! event, behind a held gate, or run by no process at all reports nothing. Its lag is therefore
//! computed from its checkpoint and the log itself, ignoring the gate (an event held behind the
//! gate is lag too), so every node reports the same figures for every follower, whichever node
//! runs it, and whether any does:
//!
//! - **events behind**: committed events after the checkpoint, counted exactly up to
//!   [`COUNT_EXACTLY_UP_TO`] (an index range scan of at most that many entries); beyond it,
//!   estimated from the distance between the checkpoint's position and the log head's
//!   (positions have gaps where a transaction rolled back, so the estimate may run high);
//! - **seconds behind**: the age of the oldest event not delivered yet (its `recorded_at`), 0
//!   when there is none: a caught-up follower is not behind, however long the service was idle.

use sqlx::PgPool;

/// Events behind that are counted one by one; a larger lag is estimated.
pub const COUNT_EXACTLY_UP_TO: i64 = 10_000;

/// One follower's distance from the head of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerLag {
    /// The follower (`relay`, a projector's name).
    pub name: String,
    /// Committed events after its checkpoint (exact up to [`COUNT_EXACTLY_UP_TO`]).
    pub events_behind: i64,
    /// Age of the oldest of them, in seconds; 0 when there is none. Without a recording time
    /// in that event's metadata, the time since the checkpoint last moved.
    pub seconds_behind: f64,
}

/// Per named follower: the age of its first undelivered event, and how many there are.
const LAGS: &str = "
SELECT f.name,
       CASE WHEN e.metadata IS NULL THEN 0 ELSE
       COALESCE(EXTRACT(EPOCH FROM clock_timestamp()
                - COALESCE((e.metadata ->> 'recorded_at')::timestamptz, c.updated_at))::float8, 0)
       END,
       CASE WHEN b.counted < $2 THEN b.counted
            ELSE GREATEST(b.counted, (SELECT h.position FROM events h
                                       ORDER BY h.transaction_id DESC, h.position DESC LIMIT 1)
                                     - COALESCE(c.position, 0))
       END
  FROM unnest($1::text[]) AS f(name)
  LEFT JOIN follower_checkpoints c ON c.name = f.name
  LEFT JOIN LATERAL (
        SELECT metadata FROM events
         WHERE (transaction_id, position) > (COALESCE(c.transaction_id, '0'::xid8), COALESCE(c.position, 0))
         ORDER BY transaction_id, position
         LIMIT 1) e ON true
  CROSS JOIN LATERAL (
        SELECT count(*) AS counted FROM (
               SELECT 1 FROM events
                WHERE (transaction_id, position) > (COALESCE(c.transaction_id, '0'::xid8), COALESCE(c.position, 0))
                ORDER BY transaction_id, position
                LIMIT $2) behind) b
 ORDER BY f.name";

/// Every follower with a checkpoint or a lease: the ones `/readyz` reports on any node.
const KNOWN_FOLLOWERS: &str =
    "SELECT name FROM follower_checkpoints UNION SELECT name FROM follower_leases ORDER BY name";

/// The lag of each named follower, by name; `None` for `names` asks for every follower the
/// database knows (with a checkpoint or a lease), whether or not any process runs it.
pub async fn follower_lags(pool: &PgPool, names: Option<&[String]>) -> Result<Vec<FollowerLag>, sqlx::Error> {
    let names = match names {
        Some(names) => names.to_vec(),
        None => sqlx::query_scalar(KNOWN_FOLLOWERS).fetch_all(pool).await?,
    };
    let rows: Vec<(String, f64, i64)> = sqlx::query_as(LAGS)
        .bind(names)
        .bind(COUNT_EXACTLY_UP_TO)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, seconds_behind, events_behind)| FollowerLag {
            name,
            events_behind,
            seconds_behind,
        })
        .collect())
}
