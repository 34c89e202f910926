//! Why a key prefix claim was refused.

/// A refused key prefix claim; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyPrefixClaimError {
    /// Another key holds the prefix.
    #[error("API key prefix is already in use")]
    AlreadyClaimed,
}
