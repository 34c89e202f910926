//! Appending an entry to an organization's chain.

use sqlx::PgConnection;
use uuid::Uuid;

use super::entry::{AuditEntry, BindContent, EntryContent, GENESIS_HASH};

/// The chain's head (its last entry's `seq` and `hash`) and whether the event at `$2` is in the
/// log already, in one round trip.
const HEAD: &str = "
SELECT head.seq, head.hash,
       EXISTS (SELECT 1 FROM audit_entries WHERE org_id = $1 AND position = $2) AS sealed
  FROM (SELECT 1) one
  LEFT JOIN LATERAL (
        SELECT seq, hash FROM audit_entries WHERE org_id = $1 ORDER BY seq DESC LIMIT 1
       ) head ON true";

const INSERT: &str = "
INSERT INTO audit_entries (org_id, seq, position, event_id, recorded_at, actor, impersonator_id,
                           action, target_type, target_id, request_id, client_ip, user_agent,
                           prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// Seals `content` (of the event at `position`) as the next entry of `org_id`'s log, chained
/// to the entry before it; an event already in that log (a replay) is left as it is.
///
/// Runs in the projector's transaction, which is the only writer of the chain (one runner per
/// projector, by lease and checkpoint), so the head read here is still the head at the insert.
pub(super) async fn seal(
    connection: &mut PgConnection,
    org_id: Uuid,
    position: i64,
    content: EntryContent,
) -> Result<(), sqlx::Error> {
    let (seq, hash, sealed): (Option<i64>, Option<Vec<u8>>, bool) = sqlx::query_as(HEAD)
        .bind(org_id)
        .bind(position)
        .fetch_one(&mut *connection)
        .await?;
    if sealed {
        return Ok(());
    }
    let prev_hash = hash.unwrap_or_else(|| GENESIS_HASH.to_vec());
    let entry = content.seal(org_id, seq.unwrap_or(0) + 1, prev_hash);
    insert(connection, position, &entry).await
}

async fn insert(connection: &mut PgConnection, position: i64, entry: &AuditEntry) -> Result<(), sqlx::Error> {
    let content = &entry.content;
    sqlx::query(INSERT)
        .bind(entry.org_id)
        .bind(entry.seq)
        .bind(position)
        .bind_content(content)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(connection)
        .await?;
    Ok(())
}
