//! Each node's short-lived copy of the organizations' request-rate limits.
//!
//! Every authenticated request checks its organization's requests-per-minute bucket, so the
//! limit must not cost a query per request: a node reads it at most once per
//! [`PLAN_CACHE_TTL`] per organization. A limit a platform administrator changes therefore
//! takes effect on every node within that time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// How long a node trusts the request-rate limit it read for an organization.
pub const PLAN_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept before expired ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// Request-rate limits read recently, by organization (`None`: unlimited).
#[derive(Default)]
pub(super) struct PlanCache {
    entries: Mutex<HashMap<Uuid, (Instant, Option<u32>)>>,
}

impl PlanCache {
    /// The limit read less than [`PLAN_CACHE_TTL`] ago, if any.
    pub(super) fn fresh(&self, org_id: Uuid) -> Option<Option<u32>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&org_id)
            .filter(|(read_at, _)| read_at.elapsed() < PLAN_CACHE_TTL)
            .map(|(_, limit)| *limit)
    }

    /// Remembers the limit just read.
    pub(super) fn remember(&self, org_id: Uuid, limit: Option<u32>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, (read_at, _)| read_at.elapsed() < PLAN_CACHE_TTL);
        }
        entries.insert(org_id, (Instant::now(), limit));
    }
}
