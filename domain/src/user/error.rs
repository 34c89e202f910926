//! Why a user command was refused.

/// A refused user command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// `RegisterUser` on a user that already exists.
    #[error("user is already registered")]
    AlreadyRegistered,
    /// Any other command before `RegisterUser`.
    #[error("user not found")]
    NotFound,
    /// As many reset links as allowed are outstanding already; no new one is sent.
    #[error("too many password reset links are outstanding")]
    TooManyResetRequests,
    /// The presented reset token is not an outstanding one, or was already used.
    #[error("password reset token is invalid or already used")]
    ResetTokenInvalid,
    /// The presented reset token is the latest one but has expired.
    #[error("password reset token has expired")]
    ResetTokenExpired,
    /// `PromoteToPlatformAdmin` on a platform administrator.
    #[error("user is already a platform administrator")]
    AlreadyPlatformAdmin,
}
