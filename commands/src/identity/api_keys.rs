//! Organization API keys: shown once, stored as a hash, found by prefix, revocable.

use domain::Role;
use domain::api_key::{ApiKeyCommand, ApiKeyError};
use domain::key_prefix_claim::{KeyPrefixClaimCommand, KeyPrefixClaimError};
use eventstore::RequestOrigin;
use eventstore::{CommandContext, CommandError};
use uuid::Uuid;

use super::{Caller, IdentityError, IdentityService, KeySummary, lookups, secrets};

/// Prefixes drawn for one key before giving up. With 48 random bits a single collision is
/// already unheard of; several in a row mean the generator is broken, not unlucky.
const PREFIX_DRAWS: usize = 5;

/// A new key. `key` is shown to the caller once and never stored.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    /// The key's id.
    pub key_id: Uuid,
    /// The full secret: `agk_<prefix>_<secret>`.
    pub key: String,
    /// The visible prefix, to recognise the key in lists and logs.
    pub prefix: String,
}

impl IdentityService {
    /// Creates a key for the caller's organization (owners and admins).
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        name: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<CreatedKey, IdentityError> {
        let org_id = caller.org()?;
        caller.require(Role::can_manage_api_keys, "manage API keys")?;
        let key_id = Uuid::now_v7();
        let context = caller.context(origin);
        let prefix = self.claim_key_prefix(key_id, &context).await?;
        let key = format!("agk_{prefix}_{}", secrets::random_secret(32));
        let create = ApiKeyCommand::CreateApiKey {
            org_id,
            name: name.to_owned(),
            prefix: prefix.clone(),
            key_hash: secrets::secret_hash(&key).into(),
            created_by: caller.actor(),
        };
        // No wait for the read model: a key is usually handed to another system before its first
        // use, and authentication waits for the view itself when it meets a prefix it does not
        // know yet (see `authenticate_key`), so only a key used at once pays for the wait.
        self.keys.create(&key_id.to_string(), create, &context).await?;
        Ok(CreatedKey { key_id, key, prefix })
    }

    /// Draws a prefix and claims it for `key_id` in the write model, drawing again while the
    /// drawn prefix belongs to another key. The claim (an aggregate per prefix, written at
    /// sequence 1) decides, not a look-up in the read model, so two keys created at once on
    /// two nodes cannot both get one prefix; a duplicate would break the view's unique index
    /// and stall its projector.
    async fn claim_key_prefix(
        &self,
        key_id: Uuid,
        context: &CommandContext,
    ) -> Result<String, IdentityError> {
        for _ in 0..PREFIX_DRAWS {
            let prefix = self.config.key_prefixes.draw();
            let claim = KeyPrefixClaimCommand::ClaimPrefix { key_id };
            match self.key_prefixes.create(&prefix, claim, context).await {
                Ok(_) => return Ok(prefix),
                Err(CommandError::Rejected(KeyPrefixClaimError::AlreadyClaimed)) => {
                    tracing::warn!(%prefix, "API key prefix already taken; drawing another");
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(IdentityError::Internal(format!(
            "{PREFIX_DRAWS} API key prefixes in a row were already taken"
        )))
    }

    /// Revokes a key of the caller's organization; from the answer on, it fails on every node.
    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        key_id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let org_id = caller.org()?;
        caller.require(Role::can_manage_api_keys, "manage API keys")?;
        // A key created a moment ago may not be in the read model yet (creation does not wait).
        let mut known = lookups::api_key_in_org(&self.pool, org_id, key_id).await?;
        if !known && self.catch_up_views().await? {
            known = lookups::api_key_in_org(&self.pool, org_id, key_id).await?;
        }
        if !known {
            return Err(ApiKeyError::NotFound.into());
        }
        let revoke = ApiKeyCommand::RevokeApiKey { by: caller.actor() };
        let revoked = self
            .keys
            .execute(&key_id.to_string(), revoke, &caller.context(origin))
            .await?;
        // Kept: a revocation must not report success while the key still authenticates.
        self.wait_for_views(
            revoked.appended.last(),
            "the API key was revoked but may still be accepted for a short while",
        )
        .await
    }

    /// The keys of the caller's organization (owners and admins).
    pub async fn list_api_keys(&self, caller: &Caller) -> Result<Vec<KeySummary>, IdentityError> {
        let org_id = caller.org()?;
        caller.require(Role::can_manage_api_keys, "manage API keys")?;
        // Creation does not wait for the read model, so the list does: it shows every key
        // created before this request (a stalled model only makes it late, and it is a read).
        if !self.catch_up_views().await? {
            tracing::warn!("identity read model is behind; listing API keys as it stands");
        }
        Ok(lookups::api_keys_of(&self.pool, org_id).await?)
    }
}
