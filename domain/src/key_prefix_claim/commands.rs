//! Commands of the key prefix claim aggregate.

use uuid::Uuid;

/// What a caller asks of a key prefix.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyPrefixClaimCommand {
    /// Reserve the prefix for a key, before `CreateApiKey`.
    ClaimPrefix {
        /// The (new) key that will carry the prefix.
        key_id: Uuid,
    },
}
