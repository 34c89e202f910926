//! Filling the audit log over the generated events: first the real audit projector
//! (`ProjectionRunner::step` over `AuditProjector`, as the background runner does) for a
//! bounded time, then, for the events it has not reached, the same sealing code in memory
//! (`EntryContent::from_event`, `EntryContent::seal` chained onto each organization's head as
//! the projector left it) written in bulk. `verify` later walks every chain across the seam.
//!
//! The in-memory part is what the projector does for these events: each has an organization
//! (so no platform-event attribution) and none changes a membership (conversations and runs
//! only), so each becomes the next entry of its organization's log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore::log::{load_checkpoint, read_after_with, save_checkpoint};
use eventstore::{Cursor, EventStore};
use projections::audit::entry::{AuditEntry, EntryContent, GENESIS_HASH};
use projections::{AUDIT, AuditProjector, ProjectionRunner};
use sqlx::PgPool;
use uuid::Uuid;

/// Events one in-memory sealing read takes.
const CONTINUE_BATCH: i64 = 10_000;

const INSERT: &str = "
INSERT INTO audit_entries (org_id, seq, position, event_id, recorded_at, actor, impersonator_id,
                           action, target_type, target_id, request_id, client_ip, user_agent,
                           prev_hash, hash)
SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[], $5::timestamptz[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                     $12::text[], $13::text[], $14::bytea[], $15::bytea[])";

/// How the audit log was filled.
pub struct Sealed {
    /// Entries the projector sealed, and in how long.
    pub by_projector: (u64, Duration),
    /// Entries sealed in memory after it, and in how long.
    pub continued: (u64, Duration),
}

/// Seals every event not yet in the audit log: the projector for `budget`, then in memory.
pub async fn seal_all(store: &EventStore, budget: Duration) -> Sealed {
    let pool = store.pool();
    let before = entries(pool).await;
    let runner = ProjectionRunner::new(store, Arc::new(AuditProjector));
    let started = Instant::now();
    while started.elapsed() < budget && runner.step().await.unwrap() {}
    let by_projector = (entries(pool).await - before, started.elapsed());
    let started = Instant::now();
    let continued = continue_in_memory(store).await;
    Sealed {
        by_projector,
        continued: (continued, started.elapsed()),
    }
}

async fn entries(pool: &PgPool) -> u64 {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_entries")
        .fetch_one(pool)
        .await
        .unwrap();
    count as u64
}

/// Seals the rest of the log after the audit checkpoint; moves the checkpoint to its end.
async fn continue_in_memory(store: &EventStore) -> u64 {
    let pool = store.pool();
    let mut heads: HashMap<Uuid, (i64, Vec<u8>)> = HashMap::new();
    let mut sealed = 0;
    loop {
        let from = load_checkpoint(pool, AUDIT).await.unwrap();
        let events = read_after_with(pool, store.upcasters(), from, CONTINUE_BATCH)
            .await
            .unwrap();
        let Some(last) = events.last() else { return sealed };
        let to: Cursor = last.cursor();
        let mut columns = Columns::default();
        for event in &events {
            assert!(
                matches!(event.aggregate_type.as_str(), "conversation" | "run"),
                "only generated events are left to seal, not {}",
                event.event_type
            );
            let org_id = event.org_id.expect("every generated event has an organization");
            if let std::collections::hash_map::Entry::Vacant(vacant) = heads.entry(org_id) {
                vacant.insert(head(pool, org_id).await);
            }
            let head = heads.get_mut(&org_id).unwrap();
            let content = EntryContent::from_event(event).unwrap();
            let entry = content.seal(org_id, head.0 + 1, head.1.clone());
            *head = (entry.seq, entry.hash.clone());
            columns.push(event.position, entry);
        }
        sealed += events.len() as u64;
        let mut transaction = pool.begin().await.unwrap();
        columns.insert(&mut transaction).await;
        assert!(save_checkpoint(&mut *transaction, AUDIT, from, to).await.unwrap());
        transaction.commit().await.unwrap();
    }
}

/// An organization's last entry (`seq`, `hash`), or the genesis.
async fn head(pool: &PgPool, org_id: Uuid) -> (i64, Vec<u8>) {
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_entries WHERE org_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(org_id)
            .fetch_optional(pool)
            .await
            .unwrap();
    head.unwrap_or((0, GENESIS_HASH.to_vec()))
}

/// Entries as the insert's columns.
#[derive(Default)]
struct Columns {
    org_id: Vec<Uuid>,
    seq: Vec<i64>,
    position: Vec<i64>,
    event_id: Vec<Uuid>,
    recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
    actor: Vec<String>,
    impersonator_id: Vec<Option<String>>,
    action: Vec<String>,
    target_type: Vec<String>,
    target_id: Vec<String>,
    request_id: Vec<Option<String>>,
    client_ip: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, position: i64, entry: AuditEntry) {
        let content = entry.content;
        self.org_id.push(entry.org_id);
        self.seq.push(entry.seq);
        self.position.push(position);
        self.event_id.push(content.event_id);
        self.recorded_at.push(content.recorded_at);
        self.actor.push(content.actor);
        self.impersonator_id.push(content.impersonator_id);
        self.action.push(content.action);
        self.target_type.push(content.target_type);
        self.target_id.push(content.target_id);
        self.request_id.push(content.request_id);
        self.client_ip.push(content.client_ip);
        self.user_agent.push(content.user_agent);
        self.prev_hash.push(entry.prev_hash);
        self.hash.push(entry.hash);
    }

    async fn insert(self, connection: &mut sqlx::PgConnection) {
        sqlx::query(INSERT)
            .bind(self.org_id)
            .bind(self.seq)
            .bind(self.position)
            .bind(self.event_id)
            .bind(self.recorded_at)
            .bind(self.actor)
            .bind(self.impersonator_id)
            .bind(self.action)
            .bind(self.target_type)
            .bind(self.target_id)
            .bind(self.request_id)
            .bind(self.client_ip)
            .bind(self.user_agent)
            .bind(self.prev_hash)
            .bind(self.hash)
            .execute(connection)
            .await
            .unwrap();
    }
}
