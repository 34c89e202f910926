//! Turning a bearer credential into a [`Caller`].

use domain::Role;

use super::sessions::require_active;
use super::{Caller, CredentialError, IdentityError, IdentityService, lookups, secrets};

impl IdentityService {
    /// Resolves an access token or an API key (`agk_…`) to the organization, user and role it
    /// acts as. Membership, role and suspension are read now, not from the token, so a removal,
    /// a demotion, a revocation or a suspension applies to the very next request on every node.
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller, IdentityError> {
        if let Some(key) = bearer.strip_prefix("agk_") {
            return self.authenticate_key(bearer, key).await;
        }
        let claims = self.tokens.verify(bearer)?;
        // An impersonation token without its impersonation's id could not be ended early.
        if claims.imp.is_some() && claims.iid.is_none() {
            return Err(CredentialError::MalformedAccessToken.into());
        }
        let standing = lookups::standing(&self.pool, claims.sub, claims.org, claims.sid, claims.iid)
            .await?
            .ok_or(CredentialError::UnknownUser)?;
        if standing.session_revoked {
            return Err(CredentialError::SessionEnded.into());
        }
        if standing.impersonation_ended {
            return Err(CredentialError::ImpersonationEnded.into());
        }
        let Some(org_id) = claims.org else {
            if !standing.is_platform_admin || claims.imp.is_some() {
                return Err(CredentialError::NoOrganizationInToken.into());
            }
            return Ok(Caller {
                org_id: None,
                user_id: Some(claims.sub),
                api_key_id: None,
                role: None,
                impersonator_id: None,
                is_platform_admin: true,
            });
        };
        require_active(standing.org_suspended)?;
        let role = standing.role.ok_or(CredentialError::MembershipEnded)?;
        Ok(Caller {
            org_id: Some(org_id),
            user_id: Some(claims.sub),
            api_key_id: None,
            role: Some(role),
            impersonator_id: claims.imp,
            is_platform_admin: standing.is_platform_admin && claims.imp.is_none(),
        })
    }

    async fn authenticate_key(&self, full_key: &str, after_scheme: &str) -> Result<Caller, IdentityError> {
        let invalid = IdentityError::from(CredentialError::UnknownApiKey);
        let Some((prefix, _)) = after_scheme.split_once('_') else {
            return Err(invalid);
        };
        let mut found = lookups::api_key_by_prefix(&self.pool, prefix).await?;
        if found.is_none() && self.catch_up_views().await? {
            // Key creation does not wait for the read model: a key created a moment ago (on any
            // node) is found once the model holds everything committed before this request.
            found = lookups::api_key_by_prefix(&self.pool, prefix).await?;
        }
        let Some(key) = found else {
            return Err(invalid);
        };
        if !secrets::hashes_equal(&key.key_hash, &secrets::secret_hash(full_key)) {
            return Err(invalid);
        }
        if key.revoked {
            return Err(CredentialError::ApiKeyRevoked.into());
        }
        require_active(key.org_suspended)?;
        if let Err(error) = lookups::touch_api_key(&self.pool, key.key_id).await {
            tracing::warn!(%error, "could not record API key use");
        }
        Ok(Caller {
            org_id: Some(key.org_id),
            user_id: None,
            api_key_id: Some(key.key_id),
            role: Some(Role::Member),
            impersonator_id: None,
            is_platform_admin: false,
        })
    }
}
