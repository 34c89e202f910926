//! The quota check a run's start makes before anything is recorded.
//!
//! - **Tokens per month**: the month's prompt plus completion tokens from the usage view; at
//!   or over the limit the start is refused (402 `token_quota_exceeded`). The view trails the
//!   log by a moment and a run's tokens are counted as it makes its calls, so a run started
//!   just under the limit may carry the month past it: the limit stops new runs, it does not
//!   cut running ones short.
//! - **Concurrent runs**: exact, whatever the number of nodes and racing starts. Under the
//!   organization's lock (see `locks`), the start waits until the run view holds every event
//!   committed before it (so every run recorded by an earlier start, and every run ended so
//!   far, is in the count), counts the runs not ended, and keeps the lock until the caller has
//!   recorded its run. With limit N, N + k racing starts give exactly N runs and k refusals
//!   (429 `concurrent_run_limit`). An organization without this limit takes no lock.

use chrono::Utc;
use projections::RUN_HISTORY;
use projections::runs::queries::runs_not_ended;
use projections::usage::tokens_since;
use uuid::Uuid;

use super::locks::OrgLock;
use super::{QuotaError, QuotaExceeded, QuotaService, month_start, next_month_start};

/// Permission to record one run, from [`QuotaService::admit_run`]. Keep it until the run is
/// recorded: while it lives, no other start of the organization counts its runs.
#[must_use = "the run must be recorded while the admission is held"]
pub struct RunAdmission {
    _lock: Option<OrgLock>,
}

impl QuotaService {
    /// Checks the organization's limits before a run starts: `Ok` with the admission to hold
    /// until the run is recorded, or the limit reached.
    pub async fn admit_run(&self, org_id: Uuid) -> Result<RunAdmission, QuotaError> {
        let limits = self.limits(org_id).await?;
        if let Some(limit) = limits.tokens_per_month {
            let now = Utc::now();
            let used = tokens_since(&self.pool, org_id, month_start(now)).await?;
            if limits.tokens_exhausted(used) {
                return Err(QuotaExceeded::TokensPerMonth {
                    limit,
                    used,
                    resets_at: next_month_start(now),
                }
                .into());
            }
        }
        let Some(limit) = limits.concurrent_runs else {
            return Ok(RunAdmission { _lock: None });
        };
        let lock = self.locks.lock(&self.pool, org_id).await?;
        self.caught_up(RUN_HISTORY).await?;
        let active = runs_not_ended(&self.pool, org_id).await?;
        if limits.runs_full(active) {
            return Err(QuotaExceeded::ConcurrentRuns { limit, active }.into());
        }
        Ok(RunAdmission { _lock: Some(lock) })
    }
}
