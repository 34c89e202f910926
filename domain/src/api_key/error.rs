//! Why an API key command was refused.

/// A refused API key command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// `CreateApiKey` on a key that already exists.
    #[error("API key already exists")]
    AlreadyExists,
    /// Any other command before `CreateApiKey`.
    #[error("API key not found")]
    NotFound,
    /// The name is blank.
    #[error("API key name must not be empty")]
    EmptyName,
    /// The name is too long.
    #[error("API key name must be at most {max} characters long")]
    NameTooLong {
        /// The limit.
        max: usize,
    },
    /// Revoking a revoked key.
    #[error("API key is already revoked")]
    AlreadyRevoked,
}
