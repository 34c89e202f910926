//! Why a session command was refused.

/// A refused session command; nothing was recorded. The API answers each with 401.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// `StartSession` on a family that already exists.
    #[error("session already started")]
    AlreadyStarted,
    /// Any other command before `StartSession`.
    #[error("session not found")]
    NotFound,
    /// The family was revoked; no token of it works.
    #[error("session has been revoked")]
    Revoked,
    /// The current token has expired.
    #[error("refresh token has expired")]
    Expired,
    /// The presented token was never part of this family.
    #[error("refresh token is invalid")]
    InvalidToken,
}
