//! Appending entries to organizations' chains, a run of events at once: one read of the heads
//! they extend, one insert.
//!
//! Most of the log is events of one organization that change no membership (a run's steps, a
//! conversation, a key). Sealed one by one, each costs a head read and an insert, and the
//! sealer then spends more of the database than the appends it follows (measured: 16 head
//! reads per agent run, the costliest statement of the whole run path). Here a run of them
//! costs two statements whatever its length: the heads of the organizations it touches (with
//! which of its events a replay already sealed), then every new entry, chained in memory in
//! log order exactly as one-by-one sealing would chain them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::entry::{AuditEntry, EntryContent, GENESIS_HASH};

/// The head (last `seq` and `hash`) of each organization in `$1`, and, as rows without a head,
/// the events of the run already in their organization's log (`$2`, `$3`: organization and
/// position of each): one round trip for both.
///
/// An event can be in the log only if its position is at most the log's highest, so only
/// those are looked up (none but after a crash or a replay), each by the `(org_id, position)`
/// index: the lateral `LIMIT 1` keeps the planner from joining the batch against the whole
/// table, which it did (a sequential scan of every entry, per batch: 4 ms at 21,000 entries,
/// growing with the log).
const HEADS_AND_SEALED: &str = "
WITH heads AS MATERIALIZED (
    SELECT o.org_id, head.seq, head.hash, last.position AS last_position
      FROM unnest($1::uuid[]) o(org_id)
      LEFT JOIN LATERAL (
            SELECT seq, hash FROM audit_entries WHERE org_id = o.org_id ORDER BY seq DESC LIMIT 1
           ) head ON true
      LEFT JOIN LATERAL (
            SELECT position FROM audit_entries WHERE org_id = o.org_id ORDER BY position DESC LIMIT 1
           ) last ON true
)
SELECT org_id, seq, hash, NULL::bigint AS sealed_position FROM heads
UNION ALL
SELECT w.org_id, NULL, NULL, w.position
  FROM unnest($2::uuid[], $3::bigint[]) w(org_id, position)
  JOIN heads h ON h.org_id = w.org_id AND w.position <= h.last_position
  CROSS JOIN LATERAL (
        SELECT 1 FROM audit_entries e WHERE e.org_id = w.org_id AND e.position = w.position LIMIT 1
       ) sealed";

const INSERT: &str = "
INSERT INTO audit_entries (org_id, seq, position, event_id, recorded_at, actor, impersonator_id,
                           action, target_type, target_id, request_id, client_ip, user_agent,
                           prev_hash, hash)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[], $5::timestamptz[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                     $12::text[], $13::text[], $14::bytea[], $15::bytea[])";

/// A row of [`HEADS_AND_SEALED`]: an organization with its head's `seq` and `hash` (none for
/// an empty log), or an organization with the position of an event already in its log.
type HeadOrSealed = (Uuid, Option<i64>, Option<Vec<u8>>, Option<i64>);

/// An event waiting to be sealed into one organization's log.
pub(super) struct Unsealed {
    pub org_id: Uuid,
    pub position: i64,
    pub content: EntryContent,
}

/// Seals `events` (in log order) as the next entries of their organizations' logs; an event
/// already in its log (a replay) is left as it is. Runs in the projector's transaction, the
/// chain's only writer, so the heads read here are still the heads at the insert.
pub(super) async fn seal_many(
    connection: &mut PgConnection,
    events: Vec<Unsealed>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let organizations: Vec<Uuid> = events
        .iter()
        .map(|event| event.org_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let (event_orgs, positions): (Vec<Uuid>, Vec<i64>) =
        events.iter().map(|event| (event.org_id, event.position)).unzip();
    let rows: Vec<HeadOrSealed> = sqlx::query_as(HEADS_AND_SEALED)
        .bind(&organizations)
        .bind(&event_orgs)
        .bind(&positions)
        .fetch_all(&mut *connection)
        .await?;
    let mut heads: HashMap<Uuid, (i64, Vec<u8>)> = HashMap::new();
    let mut sealed: HashSet<(Uuid, i64)> = HashSet::new();
    for (org_id, seq, hash, sealed_position) in rows {
        match sealed_position {
            Some(position) => {
                sealed.insert((org_id, position));
            }
            None => {
                heads.insert(
                    org_id,
                    (seq.unwrap_or(0), hash.unwrap_or_else(|| GENESIS_HASH.to_vec())),
                );
            }
        }
    }
    let mut entries = Vec::with_capacity(events.len());
    for event in events {
        if !sealed.insert((event.org_id, event.position)) {
            continue;
        }
        let head = heads
            .entry(event.org_id)
            .or_insert_with(|| (0, GENESIS_HASH.to_vec()));
        let entry = event.content.seal(event.org_id, head.0 + 1, head.1.clone());
        *head = (entry.seq, entry.hash.clone());
        entries.push((event.position, entry));
    }
    insert(connection, &entries).await
}

/// Writes `entries` (each with its event's position) in one statement.
async fn insert(connection: &mut PgConnection, entries: &[(i64, AuditEntry)]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&EntryContent) -> &Option<String>| -> Vec<Option<String>> {
        entries
            .iter()
            .map(|(_, entry)| field(&entry.content).clone())
            .collect()
    };
    let text = |field: fn(&EntryContent) -> &String| -> Vec<String> {
        entries
            .iter()
            .map(|(_, entry)| field(&entry.content).clone())
            .collect()
    };
    let org_ids: Vec<Uuid> = entries.iter().map(|(_, entry)| entry.org_id).collect();
    let seqs: Vec<i64> = entries.iter().map(|(_, entry)| entry.seq).collect();
    let positions: Vec<i64> = entries.iter().map(|(position, _)| *position).collect();
    let event_ids: Vec<Uuid> = entries.iter().map(|(_, entry)| entry.content.event_id).collect();
    let recorded_at: Vec<DateTime<Utc>> = entries
        .iter()
        .map(|(_, entry)| entry.content.recorded_at)
        .collect();
    let prev_hashes: Vec<Vec<u8>> = entries.iter().map(|(_, entry)| entry.prev_hash.clone()).collect();
    let hashes: Vec<Vec<u8>> = entries.iter().map(|(_, entry)| entry.hash.clone()).collect();
    sqlx::query(INSERT)
        .bind(org_ids)
        .bind(seqs)
        .bind(positions)
        .bind(event_ids)
        .bind(recorded_at)
        .bind(text(|content| &content.actor))
        .bind(column(|content| &content.impersonator_id))
        .bind(text(|content| &content.action))
        .bind(text(|content| &content.target_type))
        .bind(text(|content| &content.target_id))
        .bind(column(|content| &content.request_id))
        .bind(column(|content| &content.client_ip))
        .bind(column(|content| &content.user_agent))
        .bind(prev_hashes)
        .bind(hashes)
        .execute(connection)
        .await?;
    Ok(())
}
