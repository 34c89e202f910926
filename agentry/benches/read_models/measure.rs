//! The measured phases: each real path, and its raw limit (the same rows read by one bare
//! `SELECT` in the order the path reads them, streamed, each column's bytes touched and nothing
//! decoded).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore::EventStore;
use futures::TryStreamExt;
use projections::ConversationsProjector;
use sqlx::{PgPool, Row, ValueRef};

/// The follower's columns (`eventstore/src/log/follower.rs`), in its order, without its gate.
/// The order names the table's columns: a bare `transaction_id` would be the output column,
/// the text of the id.
const BARE_EVENTS: &str = "
SELECT event_id, position, transaction_id::text, org_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata
  FROM events ORDER BY events.transaction_id, events.position";

/// The columns an audit entry is read from, in the order verify walks them (each organization's
/// chain by `seq`, organizations in id order).
const BARE_AUDIT: &str = "
SELECT org_id, seq, event_id, recorded_at, actor, impersonator_id, action, target_type,
       target_id, request_id, client_ip, user_agent, prev_hash, hash
  FROM audit_entries ORDER BY org_id, seq";

/// Rows (or events, entries) handled and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub count: u64,
    pub elapsed: Duration,
}

impl Timed {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// One streamed `SELECT`: rows and bytes received.
async fn bare(pool: &PgPool, query: &str) -> (Timed, u64) {
    let started = Instant::now();
    let mut rows = sqlx::query(query).fetch(pool);
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(row) = rows.try_next().await.unwrap() {
        count += 1;
        for column in 0..row.len() {
            let value = row.try_get_raw(column).unwrap();
            if !value.is_null() {
                bytes += value.as_bytes().unwrap().len() as u64;
            }
        }
    }
    let timed = Timed {
        count,
        elapsed: started.elapsed(),
    };
    (timed, bytes)
}

/// The raw limit for the rebuild: every event in `(transaction_id, position)` order.
pub async fn bare_events(pool: &PgPool) -> (Timed, u64) {
    bare(pool, BARE_EVENTS).await
}

/// The raw limit for verify and export: every audit entry in chain order.
pub async fn bare_audit(pool: &PgPool) -> (Timed, u64) {
    bare(pool, BARE_AUDIT).await
}

/// `agentry projections rebuild conversations`: the real rebuild, from the first event to the
/// switch and the old tables dropped.
pub async fn rebuild(store: &EventStore) -> Timed {
    let started = Instant::now();
    let report = projections::rebuild::rebuild(store, Arc::new(ConversationsProjector), |_| {})
        .await
        .unwrap();
    Timed {
        count: report.events,
        elapsed: started.elapsed(),
    }
}

/// `agentry audit verify`: every organization's chain walked; asserts every chain is intact.
pub async fn verify(pool: &PgPool) -> Timed {
    let started = Instant::now();
    let verification = agentry::audit_verify::verify_audit_chains(pool, None)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(verification.intact(), "{}", verification.report());
    Timed {
        count: verification.entries,
        elapsed,
    }
}

/// `GET /v1/audit/export` of each organization, one after the other, read to the end as a
/// client would; answers the lines received (and bytes).
pub async fn export(http: &reqwest::Client, address: &str, auditors: &[String]) -> (Timed, u64) {
    let started = Instant::now();
    let (mut lines, mut bytes) = (0u64, 0u64);
    for token in auditors {
        let mut response = http
            .get(format!("{address}/v1/audit/export"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "export");
        while let Some(chunk) = response.chunk().await.unwrap() {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|&&byte| byte == b'\n').count() as u64;
        }
    }
    let timed = Timed {
        count: lines,
        elapsed: started.elapsed(),
    };
    (timed, bytes)
}
