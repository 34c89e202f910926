//! Commands of the API key aggregate.

use uuid::Uuid;

use crate::actor::Actor;
use crate::secret::TokenDigest;

/// What a caller asks of an API key.
///
/// The secret is generated and hashed by the application; the domain sees only its hash.
/// `Debug` is written by hand so that the hash never reaches logs.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiKeyCommand {
    /// Record a new key.
    CreateApiKey {
        /// The organization the key acts for.
        org_id: Uuid,
        /// A label for people, trimmed, 1 to 100 characters.
        name: String,
        /// The public start of the key, used to find it and shown in listings.
        prefix: String,
        /// Digest of the whole key.
        key_hash: TokenDigest,
        /// Who created it.
        created_by: Actor,
    },
    /// Stop the key from working.
    RevokeApiKey {
        /// Who revoked it.
        by: Actor,
    },
}
