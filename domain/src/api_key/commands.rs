//! Commands of the API key aggregate.

use std::fmt;

use uuid::Uuid;

use crate::actor::Actor;
use crate::redacted::Redacted;

/// What a caller asks of an API key.
///
/// The secret is generated and hashed by the application; the domain sees only its hash.
/// `Debug` is written by hand so that the hash never reaches logs.
#[derive(Clone, PartialEq)]
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
        key_hash: String,
        /// Who created it.
        created_by: Actor,
    },
    /// Stop the key from working.
    RevokeApiKey {
        /// Who revoked it.
        by: Actor,
    },
}

impl fmt::Debug for ApiKeyCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateApiKey {
                org_id,
                name,
                prefix,
                created_by,
                ..
            } => f
                .debug_struct("CreateApiKey")
                .field("org_id", org_id)
                .field("name", name)
                .field("prefix", prefix)
                .field("key_hash", &Redacted)
                .field("created_by", created_by)
                .finish(),
            Self::RevokeApiKey { by } => f.debug_struct("RevokeApiKey").field("by", by).finish(),
        }
    }
}
