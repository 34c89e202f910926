//! The quota service: one per process, shared by the run service, the HTTP layer's
//! per-organization request bucket and `GET /v1/billing/quotas`.

use std::time::Duration;

use chrono::Utc;
use domain::organization::Quotas;
use eventstore::log::FollowerProgress;
use projections::identity::queries::organization_quotas;
use projections::runs::queries::runs_not_ended;
use projections::usage::tokens_since;
use projections::{RUN_HISTORY, USAGE};
use sqlx::PgPool;
use uuid::Uuid;

use super::locks::OrgLocks;
use super::plan_cache::PlanCache;
use super::{QuotaError, QuotaReport, month_start, next_month_start};
use crate::identity::{Caller, IdentityError};

/// How long a quota read waits for a view to hold every event committed before it.
const VIEW_WAIT: Duration = Duration::from_secs(5);

/// Reads and enforces the organizations' plan limits.
pub struct QuotaService {
    pub(super) pool: PgPool,
    progress: FollowerProgress,
    pub(super) locks: OrgLocks,
    plans: PlanCache,
}

impl QuotaService {
    /// A service reading the views of `pool`, whose projectors' progress `progress` follows.
    pub fn new(pool: PgPool, progress: FollowerProgress) -> Self {
        Self {
            pool,
            progress,
            locks: OrgLocks::default(),
            plans: PlanCache::default(),
        }
    }

    /// The organization's limits as the identity view holds them (unlimited when never set,
    /// or when the organization is unknown: credentials of an unknown organization are
    /// refused before any limit matters).
    pub async fn limits(&self, org_id: Uuid) -> Result<Quotas, QuotaError> {
        Ok(organization_quotas(&self.pool, org_id).await?.unwrap_or_default())
    }

    /// The organization's requests-per-minute limit, read at most once per
    /// [`super::PLAN_CACHE_TTL`] on this node.
    pub async fn requests_per_minute(&self, org_id: Uuid) -> Result<Option<u32>, QuotaError> {
        if let Some(limit) = self.plans.fresh(org_id) {
            return Ok(limit);
        }
        let limit = self.limits(org_id).await?.requests_per_minute;
        self.plans.remember(org_id, limit);
        Ok(limit)
    }

    /// Every limit of the caller's organization with its use (any member may read it).
    pub async fn report(&self, caller: &Caller) -> Result<QuotaReport, QuotaError> {
        let org_id = caller.org()?;
        let limits = self.limits(org_id).await?;
        let now = Utc::now();
        self.caught_up(USAGE).await?;
        let tokens = tokens_since(&self.pool, org_id, month_start(now)).await?;
        self.caught_up(RUN_HISTORY).await?;
        let runs = runs_not_ended(&self.pool, org_id).await?;
        Ok(QuotaReport {
            limits,
            tokens_used: tokens,
            tokens_reset_at: next_month_start(now),
            runs_not_ended: runs,
            as_of: now,
        })
    }

    /// Waits until the view `name` holds every event committed before this call; 503
    /// `catching_up` when it does not within [`VIEW_WAIT`].
    pub(super) async fn caught_up(&self, name: &str) -> Result<(), QuotaError> {
        if self.progress.caught_up_with_log(name, VIEW_WAIT).await? {
            return Ok(());
        }
        tracing::warn!(view = name, "read model is behind the log; answering catching_up");
        Err(IdentityError::CatchingUp.into())
    }
}
