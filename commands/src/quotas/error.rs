//! What an exceeded limit answers, and the failures a quota check shares with identity.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::identity::IdentityError;

/// A limit the organization has reached; nothing was started.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QuotaExceeded {
    /// The month's tokens are used up (402).
    #[error(
        "the organization's plan allows {limit} tokens per month; {used} are used this month; \
         the count resets at {resets_at}"
    )]
    TokensPerMonth {
        /// The limit.
        limit: u64,
        /// Prompt plus completion tokens counted this month.
        used: u64,
        /// The start of next month (UTC).
        resets_at: DateTime<Utc>,
    },
    /// As many runs as the plan allows have not ended (429).
    #[error(
        "the organization's plan allows {limit} concurrent runs and {active} have not ended; \
         start this one when one of them ends"
    )]
    ConcurrentRuns {
        /// The limit.
        limit: u32,
        /// Runs not ended when the start was refused.
        active: u64,
    },
}

/// A refused or failed quota check.
#[derive(Debug, Error)]
pub enum QuotaError {
    /// A limit is reached.
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    /// Denied, the views behind, or our failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl From<sqlx::Error> for QuotaError {
    fn from(error: sqlx::Error) -> Self {
        Self::Identity(error.into())
    }
}
