use sqlx::PgExecutor;
use uuid::Uuid;

use super::RecordedEvent;
use super::follower::{Row, into_event};
use crate::store::Upcasters;

/// One organization's event by its id: what a bus subscriber fetches when the bus carried the
/// event cut (too large for NATS). Another organization's id, or a platform-wide event (no
/// organization), reads as `None`, exactly like an id that does not exist.
const READ_EVENT: &str = "
SELECT event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata
  FROM events
 WHERE event_id = $1 AND org_id = $2";

/// The committed event `event_id` of organization `org_id`, whole, in its current shape (as the
/// bus carried it).
pub async fn read_event<'e, E: PgExecutor<'e>>(
    executor: E,
    upcasters: &Upcasters,
    org_id: Uuid,
    event_id: Uuid,
) -> Result<Option<RecordedEvent>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(READ_EVENT)
        .bind(event_id)
        .bind(org_id)
        .fetch_optional(executor)
        .await?;
    Ok(row
        .map(into_event)
        .transpose()?
        .map(|event| upcasters.upcast_recorded(event)))
}
