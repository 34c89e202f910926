use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use commands::identity::CallerIds;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Token buckets per key (governor's GCRA), in this process's memory: each node enforces the
/// limit on the traffic it serves. Keyed by API key and user for `/v1`, and by client address
/// for `/v1/auth/*`.
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Every this many checks, buckets that are full again are forgotten, so memory follows the
/// number of recently active callers rather than every caller ever seen.
const PRUNE_EVERY: u64 = 10_000;

impl RateLimits {
    /// `per_minute` requests per minute with bursts of up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(seconds to wait)` when the caller's bucket is empty.
    pub fn check(&self, caller: CallerIds) -> Result<(), u64> {
        let key = match (caller.api_key_id, caller.user_id) {
            (Some(key), _) => format!("key:{key}"),
            (None, Some(user)) => format!("user:{user}"),
            (None, None) => return Ok(()),
        };
        self.check_key(key)
    }

    /// `Err(seconds to wait)` when the bucket of `key` is empty.
    pub fn check_key(&self, key: String) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}
