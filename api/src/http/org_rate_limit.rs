//! The organization's requests per minute: one token bucket per organization, sized by its
//! plan (`requests_per_minute`), shared by all its credentials, beside the per-caller bucket of
//! [`super::RateLimits`].
//!
//! Per node, like the per-caller limit: each node lets an organization make up to its limit
//! per minute of the traffic that node serves, so behind a load balancer over `n` nodes the
//! organization may make up to `n` times its limit. The limit itself is read at most once per
//! `commands::quotas::PLAN_CACHE_TTL` (5 s) per organization and node, so a change reaches
//! every node within that time.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use commands::identity::CallerIds;
use commands::quotas::QuotaService;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::quota_errors::organization_rate_limited;
use super::{ApiError, RateLimits};

/// Every this many checks, buckets unused for [`IDLE`] are forgotten: they are full again.
const PRUNE_EVERY: u64 = 10_000;
/// A bucket unused this long has refilled completely (the window is one minute).
const IDLE: Duration = Duration::from_secs(60);

/// Token buckets per organization, in this process's memory, sized by the plans `quotas`
/// reads.
pub struct OrgRateLimits {
    quotas: Arc<QuotaService>,
    buckets: Buckets,
}

/// The buckets themselves.
#[derive(Default)]
struct Buckets {
    buckets: Mutex<HashMap<Uuid, Bucket>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

struct Bucket {
    /// The limit the bucket was made for: a new limit gets a new (full) bucket.
    limit: u32,
    limiter: Arc<DefaultDirectRateLimiter>,
    used_at: Instant,
}

impl OrgRateLimits {
    /// Buckets for the limits `quotas` reads.
    pub fn new(quotas: Arc<QuotaService>) -> Self {
        Self {
            quotas,
            buckets: Buckets::default(),
        }
    }

    /// 429 `organization_rate_limited` when the caller's organization has used its plan's
    /// requests per minute; `Ok` for credentials of no organization and unlimited plans.
    pub async fn check(&self, caller: CallerIds) -> Result<(), ApiError> {
        let Some(org_id) = caller.org_id else {
            return Ok(());
        };
        let Some(limit) = self.quotas.requests_per_minute(org_id).await? else {
            return Ok(());
        };
        self.buckets
            .take(org_id, limit)
            .map_err(|wait| organization_rate_limited(limit, wait, Utc::now()))
    }
}

impl Buckets {
    /// `Err(seconds to wait)` when the bucket of `org_id`, holding `limit` requests a minute
    /// (all of them at once at most), is empty.
    fn take(&self, org_id: Uuid, limit: u32) -> Result<(), u64> {
        let limiter = self.limiter(org_id, limit);
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    fn limiter(&self, org_id: Uuid, limit: u32) -> Arc<DefaultDirectRateLimiter> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            buckets.retain(|_, bucket| bucket.used_at.elapsed() < IDLE);
        }
        let bucket = buckets
            .entry(org_id)
            .and_modify(|bucket| {
                if bucket.limit != limit {
                    *bucket = Bucket::new(limit);
                }
            })
            .or_insert_with(|| Bucket::new(limit));
        bucket.used_at = Instant::now();
        Arc::clone(&bucket.limiter)
    }
}

impl Bucket {
    fn new(limit: u32) -> Self {
        let per_minute = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        Self {
            limit,
            limiter: Arc::new(RateLimiter::direct(Quota::per_minute(per_minute))),
            used_at: Instant::now(),
        }
    }
}

/// The limits every authenticated request (and every WebSocket decision) passes: the caller's
/// own bucket (429 `rate_limited`), then its organization's plan (429
/// `organization_rate_limited`).
pub async fn check_rate_limits(
    per_caller: &RateLimits,
    per_organization: &OrgRateLimits,
    caller: CallerIds,
) -> Result<(), ApiError> {
    per_caller.check(caller).map_err(ApiError::too_many_requests)?;
    per_organization.check(caller).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_gets_its_limit_then_waits() {
        let limits = Buckets::default();
        let org = Uuid::new_v4();
        for _ in 0..3 {
            assert_eq!(limits.take(org, 3), Ok(()));
        }
        let wait = limits.take(org, 3).unwrap_err();
        assert!((1..=20).contains(&wait), "one request back every 20 s: {wait}");
        assert_eq!(limits.take(Uuid::new_v4(), 3), Ok(()), "another organization");
    }

    #[test]
    fn a_new_limit_starts_a_new_bucket() {
        let limits = Buckets::default();
        let org = Uuid::new_v4();
        assert_eq!(limits.take(org, 1), Ok(()));
        assert!(limits.take(org, 1).is_err());
        assert_eq!(limits.take(org, 2), Ok(()));
    }
}
