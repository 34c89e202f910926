use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{Cursor, RecordedEvent};

/// The gate and the order that never back-fill: only transactions older than every running
/// one, read in `(transaction_id, position)` order. The gate is taken in the same statement.
const READ_AFTER: &str = "
SELECT event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata
  FROM events
 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (transaction_id, position) > ($1::text::xid8, $2)
 ORDER BY transaction_id, position
 LIMIT $3";

type Row = (
    Uuid,
    i64,
    String,
    Option<Uuid>,
    String,
    String,
    i64,
    String,
    String,
    Value,
    Value,
);

/// Reads committed events after a cursor, in an order where nothing can appear behind it.
///
/// It holds no state: the relay and each projector keep their own cursor (their checkpoint).
#[derive(Clone, Debug)]
pub struct LogFollower {
    pool: PgPool,
    batch_size: i64,
}

impl LogFollower {
    /// A follower reading up to 1,000 events per batch.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            batch_size: 1_000,
        }
    }

    /// How many events one read returns at most.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = i64::try_from(batch_size.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// The next committed events after `after`; empty when the follower is caught up.
    pub async fn read_after(&self, after: Cursor) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        read_after_with(&self.pool, after, self.batch_size).await
    }
}

/// [`LogFollower::read_after`] on any executor, with an explicit batch size.
pub async fn read_after_with<'e, E: PgExecutor<'e>>(
    executor: E,
    after: Cursor,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(READ_AFTER)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(into_event).collect())
}

fn into_event(row: Row) -> RecordedEvent {
    let (
        id,
        position,
        transaction_id,
        org_id,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        version,
        data,
        metadata,
    ) = row;
    RecordedEvent {
        id,
        position,
        transaction_id: transaction_id.parse().unwrap_or_default(),
        org_id,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        version,
        data,
        metadata,
    }
}
