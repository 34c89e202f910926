//! Why an email claim was refused.

/// A refused email claim command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailClaimError {
    /// Another user holds the address.
    #[error("email address is already in use")]
    AlreadyClaimed,
}
