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
    /// The email is verified already: there is nothing to re-send.
    #[error("the email address is already verified")]
    EmailAlreadyVerified,
    /// Too many verification mails in the last hour.
    #[error("too many verification mails were sent in the last hour; retry in {retry_after_seconds} seconds")]
    VerificationMailLimit {
        /// Seconds until another may be sent.
        retry_after_seconds: i64,
    },
    /// The presented verification token is not an outstanding one (unknown, or already used).
    #[error("email verification token is invalid or already used")]
    VerificationTokenInvalid,
    /// The presented verification token has expired.
    #[error("email verification token has expired")]
    VerificationTokenExpired,
}
