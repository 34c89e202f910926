//! Registration, login and refresh-token rotation.

use chrono::Utc;
use domain::session::{RevocationReason, SessionCommand};
use domain::{Actor, EmailAddress};
use eventstore::RequestOrigin;
use sqlx::PgPool;
use uuid::Uuid;

use super::login_throttle::{ClientAddress, account_key};
use super::{CredentialError, IdentityError, IdentityService, TokenPair, lookups, secrets, tokens};
use eventstore::CommandContext;

impl IdentityService {
    /// Checks the password and opens a session for `org_id`, or for the first organization the
    /// user joined. A wrong email and a wrong password get the same answer in about the same time.
    /// Attempts from `client` are limited per account and address (see `login_throttle`).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        org_id: Option<Uuid>,
        client: ClientAddress,
        origin: Option<RequestOrigin>,
    ) -> Result<TokenPair, IdentityError> {
        let user = match EmailAddress::parse(email) {
            Ok(email) => self.user_by_email(&email).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        self.check_password(email, password, stored, client).await?;
        let user = user.ok_or(IdentityError::InvalidCredentials)?;
        let org_id = match org_id {
            Some(org_id) => {
                lookups::role_in(&self.pool, org_id, user.user_id)
                    .await?
                    .ok_or(IdentityError::NotAMemberOfOrganization)?;
                Some(org_id)
            }
            None => lookups::first_organization(&self.pool, user.user_id).await?,
        };
        match org_id {
            Some(org_id) => ensure_active(&self.pool, org_id).await?,
            None if user.is_platform_admin => {}
            None => {
                return Err(IdentityError::NoOrganization);
            }
        }
        let mut context = user_context(user.user_id, origin);
        context.org_id = org_id;
        self.start_session(user.user_id, org_id, &context).await
    }

    /// The account with this address, as the read model has it; when it has none, after
    /// waiting for the model to hold everything committed before this call (an account
    /// registered a moment ago, on any node, is found), and `CatchingUp` if it cannot.
    async fn user_by_email(&self, email: &EmailAddress) -> Result<Option<lookups::UserRow>, IdentityError> {
        if let Some(user) = lookups::user_by_email(&self.pool, email.as_str()).await? {
            return Ok(Some(user));
        }
        if !self.catch_up_views().await? {
            return Err(IdentityError::CatchingUp);
        }
        Ok(lookups::user_by_email(&self.pool, email.as_str()).await?)
    }

    /// Exchanges a refresh token for a new pair. The old token stops working; presenting it
    /// again revokes the whole session (a stolen token is useless once either party refreshes),
    /// except within [`IdentityConfig::refresh_grace`](super::IdentityConfig) of the rotation,
    /// when it gets the same new pair again (two concurrent refreshes by one client).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<TokenPair, IdentityError> {
        let family = parse_refresh_token(refresh_token)?;
        let session = self.sessions.load(&family.to_string()).await?;
        let (Some(user_id), org_id) = (session.user_id(), session.org_id()) else {
            return Err(CredentialError::InvalidRefreshToken.into());
        };
        // Refusals that are not about the token itself come first and spend nothing: the same
        // refresh token works again once the organization is reactivated.
        if let Some(org_id) = org_id {
            ensure_active(&self.pool, org_id).await?;
            if lookups::role_in(&self.pool, org_id, user_id).await?.is_none() {
                return Err(CredentialError::MembershipEnded.into());
            }
        }
        let mut context = user_context(user_id, origin);
        context.org_id = org_id;
        let user = self.users.load(&user_id.to_string()).await?;
        if session.revocation_reason() == Some(RevocationReason::PasswordChanged) {
            return Err(CredentialError::PasswordChanged.into());
        }
        if user.credential_version() != session.credential_version() && !session.is_revoked() {
            let end = SessionCommand::EndSession {
                reason: RevocationReason::PasswordChanged,
            };
            self.sessions.execute(&family.to_string(), end, &context).await?;
            return Err(CredentialError::PasswordChanged.into());
        }
        let now = Utc::now();
        // Derived from the presented token: a repeat within the grace window asks for, and
        // gets, the successor the first refresh recorded.
        let new_token = self.tokens.successor_refresh_token(family, refresh_token);
        let rotate = SessionCommand::RefreshSession {
            presented_hash: secrets::secret_hash(refresh_token).into(),
            new_hash: secrets::secret_hash(&new_token).into(),
            new_expires_at: now + self.config.refresh_ttl,
            now,
            repeat_grace: self.config.refresh_grace,
        };
        let rotated = self
            .sessions
            .execute(&family.to_string(), rotate, &context)
            .await?;
        if rotated.state.is_revoked() {
            tracing::warn!(session = %family, user = %user_id, "refresh token reuse: session revoked");
            return Err(CredentialError::RefreshTokenReused.into());
        }
        // Minted as of the rotation, so a repeat within the grace gets the same access token.
        let issued_at = rotated.state.refreshed_at().unwrap_or(now);
        let expires_at = issued_at + self.config.access_ttl;
        let claims = tokens::claims(user_id, org_id, None, issued_at, expires_at).in_session(family);
        Ok(TokenPair {
            access_token: self.tokens.issue(&claims)?,
            refresh_token: new_token,
            expires_in: (expires_at - now).num_seconds().max(0),
        })
    }

    /// Whether `password` matches `stored` (`None`: no such account, checked all the same),
    /// admitted by the login throttle first. The hashing permit is taken before the attempt is
    /// counted, so an attempt answered busy is not counted as a failure.
    async fn check_password(
        &self,
        email: &str,
        password: &str,
        stored: Option<String>,
        client: ClientAddress,
    ) -> Result<(), IdentityError> {
        let account = account_key(email);
        let permit = self.hashing.permit().await?;
        self.login_throttle.admit(&account, client).await?;
        let known = stored.is_some();
        if !permit.verify(password.to_owned(), stored).await || !known {
            return Err(IdentityError::InvalidCredentials);
        }
        self.login_throttle.succeeded(&account, client).await
    }

    /// Starts a refresh-token family and returns its first pair.
    pub(super) async fn start_session(
        &self,
        user_id: Uuid,
        org_id: Option<Uuid>,
        context: &CommandContext,
    ) -> Result<TokenPair, IdentityError> {
        let family = Uuid::now_v7();
        let refresh_token = new_refresh_token(family);
        let credential_version = self.users.load(&user_id.to_string()).await?.credential_version();
        let start = SessionCommand::StartSession {
            user_id,
            org_id,
            token_hash: secrets::secret_hash(&refresh_token).into(),
            expires_at: Utc::now() + self.config.refresh_ttl,
            credential_version,
        };
        self.sessions.create(&family.to_string(), start, context).await?;
        Ok(TokenPair {
            access_token: self.access_token(user_id, org_id, family)?,
            refresh_token,
            expires_in: self.config.access_ttl.num_seconds(),
        })
    }

    /// An access token of `session` for `user` in `org`.
    pub(super) fn access_token(
        &self,
        user: Uuid,
        org: Option<Uuid>,
        session: Uuid,
    ) -> Result<String, IdentityError> {
        let now = Utc::now();
        let claims = tokens::claims(user, org, None, now, now + self.config.access_ttl).in_session(session);
        self.tokens.issue(&claims)
    }
}

/// 403 for a suspended organization, 401 for one that does not exist.
pub(super) async fn ensure_active(pool: &PgPool, org_id: Uuid) -> Result<(), IdentityError> {
    require_active(lookups::organization_suspended(pool, org_id).await?)
}

/// [`ensure_active`] on an already read suspension flag (`None`: no such organization).
pub(super) fn require_active(suspended: Option<bool>) -> Result<(), IdentityError> {
    match suspended {
        Some(false) => Ok(()),
        Some(true) => Err(IdentityError::OrganizationSuspended),
        None => Err(CredentialError::UnknownOrganization.into()),
    }
}

pub(super) fn user_context(user_id: Uuid, origin: Option<RequestOrigin>) -> CommandContext {
    CommandContext {
        actor: Actor::User { id: user_id },
        org_id: None,
        request: origin,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        impersonator_id: None,
    }
}

/// `rt_<family>_<secret>`: the family id finds the session without a look-up table.
fn new_refresh_token(family: Uuid) -> String {
    format!("rt_{}_{}", family.simple(), secrets::random_secret(32))
}

fn parse_refresh_token(token: &str) -> Result<Uuid, IdentityError> {
    token
        .strip_prefix("rt_")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(family, _)| Uuid::try_parse(family).ok())
        .ok_or(CredentialError::InvalidRefreshToken.into())
}
