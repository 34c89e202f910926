//! Why an impersonation command was refused.

/// A refused impersonation command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImpersonationError {
    /// `StartImpersonation` on an impersonation that already exists.
    #[error("impersonation already started")]
    AlreadyStarted,
    /// `EndImpersonation` before `StartImpersonation`.
    #[error("impersonation not found")]
    NotFound,
    /// `EndImpersonation` twice.
    #[error("impersonation already ended")]
    AlreadyEnded,
    /// No reason given.
    #[error("a reason for the impersonation is required")]
    EmptyReason,
    /// The reason is too long.
    #[error("impersonation reason must be at most {max} characters long")]
    ReasonTooLong {
        /// The limit.
        max: usize,
    },
    /// The time limit is not in the future.
    #[error("impersonation must expire in the future")]
    ExpiryNotInFuture,
    /// The time limit is too far ahead.
    #[error("impersonation may last at most {max_minutes} minutes")]
    ExpiryTooFar {
        /// The limit, in minutes.
        max_minutes: i64,
    },
    /// An administrator tried to impersonate themself.
    #[error("an administrator cannot impersonate themself")]
    CannotImpersonateSelf,
}
