//! `GET /v1/billing/quotas`: every limit with its current use and when that use resets.

use chrono::{DateTime, Utc};
use domain::organization::Quotas;

/// The organization's limits with their use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaReport {
    /// The limits in force (each `None`: unlimited).
    pub limits: Quotas,
    /// Prompt plus completion tokens this calendar month (UTC), from the usage view.
    pub tokens_used: u64,
    /// When the month's count starts again: the start of next month (UTC).
    pub tokens_reset_at: DateTime<Utc>,
    /// Runs not ended (queued, running, awaiting approval or credits); a run ending frees its
    /// place, so this has no reset time. Requests per minute have no figure: each node counts
    /// its own traffic (see `docs/billing.md`).
    pub runs_not_ended: u64,
    /// When the figures were read.
    pub as_of: DateTime<Utc>,
}
