//! Why an invitation command was refused.

/// A refused invitation command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    /// `SendInvitation` on an invitation that exists.
    #[error("invitation already exists")]
    AlreadySent,
    /// No invitation has this token (unknown id, or a wrong secret).
    #[error("unknown invitation token")]
    TokenInvalid,
    /// The invitation was accepted already; a token works once.
    #[error("this invitation was already accepted")]
    AlreadyAccepted,
    /// The invitation has expired.
    #[error("this invitation has expired")]
    Expired,
    /// The token was mailed to another address than the accepting user's.
    #[error("this invitation was sent to another email address; log in as that address to accept it")]
    ForAnotherAddress,
}
