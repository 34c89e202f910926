use std::borrow::Borrow;
use std::sync::Arc;

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Cursor, LogTail, RecordedEvent, parse_transaction_id};
use crate::EventStore;
use crate::store::Upcasters;

/// The gate and the order that never back-fill: only transactions older than every running
/// one, read in `(transaction_id, position)` order. The gate is taken in the same statement.
///
/// The order names the table's columns (`events.transaction_id`): a bare `transaction_id` in
/// `ORDER BY` is the *output* column, `transaction_id::text`, which sorts `"100000"` before
/// `"99999"` (every read across a power of ten would deliver later transactions first) and
/// cannot use `events_log_order`, so each read sorted every event after the cursor.
pub(crate) const READ_AFTER: &str = "
SELECT event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata
  FROM events
 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (transaction_id, position) > ($1::text::xid8, $2)
 ORDER BY events.transaction_id, events.position
 LIMIT $3";

/// The columns of an `events` row as [`Row`] reads them, for queries elsewhere (the read side)
/// that select events in their own way and turn each row into an event with [`into_event`].
pub const EVENT_COLUMNS: &str = "event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, \
                                 sequence, event_type, event_version, payload, metadata";

/// One `events` row as the follower's queries select it ([`EVENT_COLUMNS`]).
pub type Row = (
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
/// Every event comes out in its current shape, through the store's own upcasters: the relay,
/// the projectors and bus subscribers never see a payload version the domain no longer writes.
///
/// It holds no cursor: the relay and each projector keep their own (their checkpoint). Reads
/// go through the store's [`LogTail`], so the followers of one process share them.
#[derive(Clone)]
pub struct LogFollower {
    tail: LogTail,
    batch_size: usize,
}

impl LogFollower {
    /// A follower of `store`'s log (its pool and upcasters) reading up to 1,000 events per batch.
    pub fn new(store: &EventStore) -> Self {
        Self {
            tail: store.tail().clone(),
            batch_size: 1_000,
        }
    }

    /// How many events one read returns at most.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The next committed events after `after`; empty when the follower is caught up (a read
    /// that began after this call found nothing).
    pub async fn read_after(&self, after: Cursor) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        self.tail.read_after(after, self.batch_size).await
    }

    /// [`read_after`](Self::read_after), the events shared with the process's other followers
    /// rather than copied for this one ([`LogTail::read_after_shared`]).
    pub async fn read_after_shared(&self, after: Cursor) -> Result<Vec<Arc<RecordedEvent>>, sqlx::Error> {
        self.tail.read_after_shared(after, self.batch_size).await
    }
}

/// [`LogFollower::read_after`] on any executor, with explicit upcasters and batch size.
pub async fn read_after_with<'e, E: PgExecutor<'e>>(
    executor: E,
    upcasters: &Upcasters,
    after: Cursor,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(READ_AFTER)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.into_iter()
        .map(|row| into_event(row).map(|event| upcasters.upcast_recorded(event)))
        .collect()
}

/// How many of a read's `events` to use so that they end on a whole transaction, when the
/// read was full and may have cut its last transaction short: all but that transaction's,
/// unless it is all the read holds (one command larger than a read is then used in parts).
pub fn whole_transactions<E: Borrow<RecordedEvent>>(events: &[E]) -> usize {
    let Some(last) = events.last().map(|event| event.borrow().transaction_id) else {
        return 0;
    };
    match events
        .iter()
        .position(|event| event.borrow().transaction_id == last)
    {
        Some(0) | None => events.len(),
        Some(first_of_last) => first_of_last,
    }
}

/// A row as an event, as stored (not upcast); a transaction id that does not parse is an error
/// (never 0, which would move a cursor back to the start of the log).
pub fn into_event(row: Row) -> Result<RecordedEvent, sqlx::Error> {
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
    let transaction_id =
        parse_transaction_id(&transaction_id).map_err(|detail| sqlx::Error::ColumnDecode {
            index: "transaction_id".to_owned(),
            source: detail.into(),
        })?;
    Ok(RecordedEvent {
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
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::{Row, into_event};

    fn row_with_transaction_id(transaction_id: &str) -> Row {
        (
            Uuid::now_v7(),
            7,
            transaction_id.to_owned(),
            None,
            "organization".to_owned(),
            "o".to_owned(),
            1,
            "organization.renamed".to_owned(),
            "1".to_owned(),
            json!({ "type": "organization.renamed" }),
            json!({}),
        )
    }

    #[test]
    fn a_transaction_id_that_is_not_a_number_is_an_error_not_zero() {
        let outcome = into_event(row_with_transaction_id("not-a-number"));
        assert!(
            matches!(&outcome, Err(sqlx::Error::ColumnDecode { index, .. }) if index == "transaction_id"),
            "{outcome:?}"
        );
        assert_eq!(
            into_event(row_with_transaction_id("98765"))
                .unwrap()
                .transaction_id,
            98765
        );
    }
}
