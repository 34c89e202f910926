//! Turning a bearer credential into a [`Caller`], and checking later that it still stands.

use domain::Role;
use uuid::Uuid;

use super::sessions::require_active;
use super::standings::read_standing;
use super::{Caller, CredentialError, IdentityError, IdentityService, lookups, secrets};
use projections::identity::queries::StandingQuery;

/// What a user's access token (or a ticket it issued) names, beyond the user.
#[derive(Clone, Copy, Debug)]
struct UserCredentials {
    user_id: Uuid,
    org_id: Option<Uuid>,
    session_id: Option<Uuid>,
    impersonation_id: Option<Uuid>,
    impersonator_id: Option<Uuid>,
}

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
        self.user_caller(UserCredentials {
            user_id: claims.sub,
            org_id: claims.org,
            session_id: claims.sid,
            impersonation_id: claims.iid,
            impersonator_id: claims.imp,
        })
        .await
    }

    /// The caller as its credentials stand now: what a long-lived connection (a run's stream)
    /// asks again while it lasts. A revoked API key, an ended session or impersonation, a
    /// membership removed and a suspended organization refuse exactly as [`authenticate`] would;
    /// the role is read again. An access token's expiry is not: it was checked when the
    /// connection was opened, and what it opened is bound to the credentials' standing since.
    ///
    /// [`authenticate`]: Self::authenticate
    pub async fn recheck(&self, caller: &Caller) -> Result<Caller, IdentityError> {
        if let Some(key_id) = caller.api_key_id {
            let key = lookups::api_key_by_id(&self.pool, key_id)
                .await?
                .ok_or(CredentialError::UnknownApiKey)?;
            return key_caller(&key);
        }
        let user_id = caller.user_id.ok_or(CredentialError::UnknownUser)?;
        self.user_caller(UserCredentials {
            user_id,
            org_id: caller.org_id,
            session_id: caller.session_id,
            impersonation_id: caller.impersonation_id,
            impersonator_id: caller.impersonator_id,
        })
        .await
    }

    async fn user_caller(&self, credentials: UserCredentials) -> Result<Caller, IdentityError> {
        let UserCredentials {
            user_id,
            org_id,
            session_id,
            impersonation_id,
            impersonator_id,
        } = credentials;
        let query = StandingQuery {
            user_id,
            org_id,
            session_id,
            impersonation_id,
        };
        let standing = read_standing(&self.standing_reads, query)
            .await?
            .ok_or(CredentialError::UnknownUser)?;
        if standing.session_revoked {
            return Err(CredentialError::SessionEnded.into());
        }
        if standing.impersonation_ended {
            return Err(CredentialError::ImpersonationEnded.into());
        }
        let Some(org_id) = org_id else {
            if !standing.is_platform_admin || impersonator_id.is_some() {
                return Err(CredentialError::NoOrganizationInToken.into());
            }
            return Ok(Caller {
                org_id: None,
                user_id: Some(user_id),
                api_key_id: None,
                role: None,
                impersonator_id: None,
                is_platform_admin: true,
                session_id,
                impersonation_id: None,
            });
        };
        require_active(standing.org_suspended)?;
        let role = standing.role.ok_or(CredentialError::MembershipEnded)?;
        Ok(Caller {
            org_id: Some(org_id),
            user_id: Some(user_id),
            api_key_id: None,
            role: Some(role),
            impersonator_id,
            is_platform_admin: standing.is_platform_admin && impersonator_id.is_none(),
            session_id,
            impersonation_id,
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
        let caller = key_caller(&key)?;
        // One statement fewer per request: the stamp moves at most once a minute anyway.
        if !key.used_recently
            && let Err(error) = lookups::touch_api_key(&self.pool, key.key_id).await
        {
            tracing::warn!(%error, "could not record API key use");
        }
        Ok(caller)
    }
}

/// The caller an API key acts as, unless it is revoked or its organization suspended.
fn key_caller(key: &lookups::KeyRow) -> Result<Caller, IdentityError> {
    if key.revoked {
        return Err(CredentialError::ApiKeyRevoked.into());
    }
    require_active(key.org_suspended)?;
    Ok(Caller {
        org_id: Some(key.org_id),
        user_id: None,
        api_key_id: Some(key.key_id),
        role: Some(Role::Member),
        impersonator_id: None,
        is_platform_admin: false,
        session_id: None,
        impersonation_id: None,
    })
}
