//! Turning a bearer credential into a [`Caller`], and checking later that it still stands.

use domain::Role;
use uuid::Uuid;

use eventstore::CallerStanding;
use projections::identity::queries::{Standing, StandingQuery};

use super::sessions::require_active;
use super::standings::read_standing;
use super::{Caller, CredentialError, GuardedCaller, IdentityError, IdentityService, lookups, secrets};

/// What a user's access token (or a ticket it issued) names, beyond the user.
#[derive(Clone, Copy, Debug)]
pub(super) struct UserCredentials {
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
        let credentials = self.user_credentials(bearer)?;
        Ok(self.user_caller(credentials).await?.0)
    }

    /// [`authenticate`](Self::authenticate) for a route whose write confirms the caller's
    /// standing in its own append ([`GuardedCaller`]): a user's standing as this process last
    /// read it for the same credentials, without a query, or read now when it remembers none.
    /// The token itself (signature, expiry) is checked now either way, and API keys are read
    /// as on every route.
    pub async fn authenticate_for_write(&self, bearer: &str) -> Result<GuardedCaller, IdentityError> {
        if let Some(key) = bearer.strip_prefix("agk_") {
            let caller = self.authenticate_key(bearer, key).await?;
            return Ok(GuardedCaller::key(caller));
        }
        let credentials = self.user_credentials(bearer)?;
        // A remembered standing that refuses is read again: refusals come from a fresh read.
        if let Some(standing) = self.remembered_standings.get(&credentials.query())
            && let Ok(caller) = caller_with(credentials, &standing)
        {
            let guard = credentials.guard(standing);
            return Ok(GuardedCaller::user(caller, credentials, guard, true));
        }
        let (caller, standing) = self.user_caller(credentials).await?;
        let guard = credentials.guard(standing);
        Ok(GuardedCaller::user(caller, credentials, guard, false))
    }

    /// `caller` with its standing read now: what a write decided with a remembered standing
    /// does before answering a refusal or an error, and what any guarded write does when its
    /// append wrote nothing (the standing may have changed). The refusal the standing now calls
    /// for (401, 403) is the error.
    pub async fn confirm(&self, caller: &GuardedCaller) -> Result<GuardedCaller, IdentityError> {
        let Some(credentials) = caller.credentials() else {
            // An API key: read on every request, its refusals are never from memory.
            let caller = self.recheck(caller.unconfirmed()).await?;
            return Ok(GuardedCaller::key(caller));
        };
        let (caller, standing) = self.user_caller(credentials).await?;
        let guard = credentials.guard(standing);
        Ok(GuardedCaller::user(caller, credentials, guard, false))
    }

    /// The user credentials an access token names, once its signature and expiry are checked.
    fn user_credentials(&self, bearer: &str) -> Result<UserCredentials, IdentityError> {
        let claims = self.tokens.verify(bearer)?;
        // An impersonation token without its impersonation's id could not be ended early.
        if claims.imp.is_some() && claims.iid.is_none() {
            return Err(CredentialError::MalformedAccessToken.into());
        }
        Ok(UserCredentials {
            user_id: claims.sub,
            org_id: claims.org,
            session_id: claims.sid,
            impersonation_id: claims.iid,
            impersonator_id: claims.imp,
        })
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
        Ok(self.user_caller(UserCredentials::of(user_id, caller)).await?.0)
    }

    /// The caller `credentials` act as, with their standing read now (and remembered for
    /// [`authenticate_for_write`](Self::authenticate_for_write); forgotten when it refuses).
    async fn user_caller(&self, credentials: UserCredentials) -> Result<(Caller, Standing), IdentityError> {
        let query = credentials.query();
        let Some(standing) = read_standing(&self.standing_reads, query).await? else {
            self.remembered_standings.forget(&query);
            return Err(CredentialError::UnknownUser.into());
        };
        match caller_with(credentials, &standing) {
            Ok(caller) => {
                self.remembered_standings.keep(query, &standing);
                Ok((caller, standing))
            }
            Err(refused) => {
                self.remembered_standings.forget(&query);
                Err(refused)
            }
        }
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

impl UserCredentials {
    /// The credentials of a caller resolved before, for user `user_id`.
    fn of(user_id: Uuid, caller: &Caller) -> Self {
        Self {
            user_id,
            org_id: caller.org_id,
            session_id: caller.session_id,
            impersonation_id: caller.impersonation_id,
            impersonator_id: caller.impersonator_id,
        }
    }

    /// Whose standing these credentials need.
    fn query(&self) -> StandingQuery {
        StandingQuery {
            user_id: self.user_id,
            org_id: self.org_id,
            session_id: self.session_id,
            impersonation_id: self.impersonation_id,
        }
    }

    /// What an append decided for these credentials with `standing` must find unchanged.
    fn guard(&self, standing: Standing) -> CallerStanding {
        CallerStanding {
            user_id: self.user_id,
            org_id: self.org_id,
            session_id: self.session_id,
            impersonation_id: self.impersonation_id,
            text: standing.text,
        }
    }
}

/// The caller `credentials` act as with `standing`, or why they may not act.
fn caller_with(credentials: UserCredentials, standing: &Standing) -> Result<Caller, IdentityError> {
    let UserCredentials {
        user_id,
        org_id,
        session_id,
        impersonation_id,
        impersonator_id,
    } = credentials;
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
