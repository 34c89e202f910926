//! An organization's plan limits (quotas), as a platform administrator sets them.
//!
//! Each limit is optional: `None` is unlimited. The organization only records them; the
//! application enforces them where work starts (a run's start, each request), because that is
//! where the current use (tokens this month, runs not ended, requests this minute) is known.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OrganizationError;

/// Most tokens a month a plan may allow (10^12).
pub const MAX_TOKENS_PER_MONTH: u64 = 1_000_000_000_000;
/// Most concurrent runs a plan may allow.
pub const MAX_CONCURRENT_RUNS: u32 = 10_000;
/// Most requests a minute a plan may allow.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 1_000_000;

/// An organization's plan limits; `None` means unlimited (the default of an organization whose
/// limits were never set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Quotas {
    /// Prompt plus completion tokens per calendar month (UTC), 1 to 10^12.
    pub tokens_per_month: Option<u64>,
    /// Runs not ended (queued, running, awaiting approval or credits) at once, 1 to 10,000.
    pub concurrent_runs: Option<u32>,
    /// Authenticated requests per minute by all the organization's credentials, 1 to 1,000,000.
    pub requests_per_minute: Option<u32>,
}

/// Which limit a refusal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaName {
    /// [`Quotas::tokens_per_month`].
    TokensPerMonth,
    /// [`Quotas::concurrent_runs`].
    ConcurrentRuns,
    /// [`Quotas::requests_per_minute`].
    RequestsPerMinute,
}

impl QuotaName {
    /// The limit's field name, as the API and the events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokensPerMonth => "tokens_per_month",
            Self::ConcurrentRuns => "concurrent_runs",
            Self::RequestsPerMinute => "requests_per_minute",
        }
    }
}

impl std::fmt::Display for QuotaName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Quotas {
    /// The limits themselves, or the first one outside its range (zero, or over its maximum:
    /// a limit of zero would be a suspension, which has its own command).
    pub fn validated(self) -> Result<Self, OrganizationError> {
        in_range(
            QuotaName::TokensPerMonth,
            self.tokens_per_month,
            MAX_TOKENS_PER_MONTH,
        )?;
        in_range(
            QuotaName::ConcurrentRuns,
            self.concurrent_runs.map(u64::from),
            u64::from(MAX_CONCURRENT_RUNS),
        )?;
        in_range(
            QuotaName::RequestsPerMinute,
            self.requests_per_minute.map(u64::from),
            u64::from(MAX_REQUESTS_PER_MINUTE),
        )?;
        Ok(self)
    }
}

impl Quotas {
    /// Whether `used` tokens this month leave none for a new run: at the limit or past it
    /// (a run started under the limit may carry the month past it).
    pub fn tokens_exhausted(&self, used: u64) -> bool {
        self.tokens_per_month.is_some_and(|limit| used >= limit)
    }

    /// Whether `active` runs not ended leave no room for one more.
    pub fn runs_full(&self, active: u64) -> bool {
        self.concurrent_runs
            .is_some_and(|limit| active >= u64::from(limit))
    }
}

fn in_range(quota: QuotaName, value: Option<u64>, max: u64) -> Result<(), OrganizationError> {
    match value {
        Some(value) if value == 0 || value > max => Err(OrganizationError::QuotaOutOfRange { quota, max }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_needs_tokens_left_and_a_free_place() {
        let quotas = Quotas {
            tokens_per_month: Some(100),
            concurrent_runs: Some(2),
            requests_per_minute: None,
        };
        assert!(!quotas.tokens_exhausted(99));
        assert!(quotas.tokens_exhausted(100));
        assert!(!quotas.runs_full(1));
        assert!(quotas.runs_full(2));
        assert!(!Quotas::default().tokens_exhausted(u64::MAX));
        assert!(!Quotas::default().runs_full(u64::MAX));
    }

    #[test]
    fn unlimited_is_valid() {
        assert_eq!(Quotas::default().validated(), Ok(Quotas::default()));
    }

    #[test]
    fn a_limit_of_zero_is_out_of_range() {
        let quotas = Quotas {
            concurrent_runs: Some(0),
            ..Quotas::default()
        };
        assert_eq!(
            quotas.validated(),
            Err(OrganizationError::QuotaOutOfRange {
                quota: QuotaName::ConcurrentRuns,
                max: 10_000
            })
        );
    }

    #[test]
    fn a_limit_over_its_maximum_is_out_of_range() {
        let quotas = Quotas {
            tokens_per_month: Some(MAX_TOKENS_PER_MONTH + 1),
            ..Quotas::default()
        };
        assert_eq!(
            quotas.validated(),
            Err(OrganizationError::QuotaOutOfRange {
                quota: QuotaName::TokensPerMonth,
                max: MAX_TOKENS_PER_MONTH
            })
        );
    }

    #[test]
    fn the_maximum_itself_is_valid() {
        let quotas = Quotas {
            tokens_per_month: Some(MAX_TOKENS_PER_MONTH),
            concurrent_runs: Some(MAX_CONCURRENT_RUNS),
            requests_per_minute: Some(MAX_REQUESTS_PER_MINUTE),
        };
        assert_eq!(quotas.validated(), Ok(quotas));
    }
}
