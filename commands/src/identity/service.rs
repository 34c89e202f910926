use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use domain::api_key::ApiKey;
use domain::email_claim::EmailClaim;
use domain::impersonation::Impersonation;
use domain::invitation::Invitation;
use domain::key_prefix_claim::KeyPrefixClaim;
use domain::organization::Organization;
use domain::session::Session;
use domain::user::User;
use sqlx::PgPool;
use uuid::Uuid;

use super::login_throttle::{LoginLimits, LoginThrottle};
use super::passwords::{HashingLimits, PasswordHashing};
use super::remembered_standings::RememberedStandings;
use super::standings::{StandingReads, standing_reads};
use super::{IDENTITY_VIEW, IdentityError, KeyPrefixSource, Mailer, TokenKeys};
use eventstore::log::FollowerProgress;
use eventstore::store::AppendedEvent;
use eventstore::{CommandBus, EventStore};

/// How long a write waits for the identity read model before answering that it is not yet in
/// effect, unless configured otherwise: longer than a projector's lease takes to change hands
/// (its 5 s expiry, then a standby's next try), so a node that dies or freezes while holding
/// the projector costs a slow answer rather than an error; short enough that a projector
/// stalled for good does not hold request tasks for long.
pub const DEFAULT_VIEW_WAIT: Duration = Duration::from_secs(8);

/// How long a spent refresh token still gets the pair it was exchanged for, unless configured
/// otherwise: long enough for a client's concurrent refreshes (two tabs, a retry after a lost
/// answer) to land, short enough that a thief replaying it later is still caught as reuse.
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(10);

/// Lifetimes and outside services of identity.
#[derive(Clone)]
pub struct IdentityConfig {
    /// Lifetime of an access token.
    pub access_ttl: TimeDelta,
    /// Lifetime of a refresh token (each refresh starts it again).
    pub refresh_ttl: TimeDelta,
    /// How long after a refresh the refresh token it spent still returns the same new pair
    /// instead of revoking the session as reuse (see [`DEFAULT_REFRESH_GRACE`]).
    pub refresh_grace: TimeDelta,
    /// Lifetime of a password reset link.
    pub reset_ttl: TimeDelta,
    /// Lifetime of an invitation to join an organization.
    pub invitation_ttl: TimeDelta,
    /// Lifetime of an email verification link.
    pub verification_ttl: TimeDelta,
    /// Base URL for links in emails.
    pub public_url: String,
    /// Sends password reset, verification and invitation mail; `None`: reset and verification
    /// requests are logged, invitations refused (`mail_unavailable`).
    pub mailer: Option<Mailer>,
    /// How long a write waits for the identity read model to hold it (see [`DEFAULT_VIEW_WAIT`]).
    pub view_wait: Duration,
    /// How much password hashing runs at once, and how long callers wait for it.
    pub hashing: HashingLimits,
    /// Limits on failed logins per (account, address) and per account.
    pub login_limits: LoginLimits,
    /// Where new API key prefixes come from (random; tests force collisions with it).
    pub key_prefixes: KeyPrefixSource,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            access_ttl: TimeDelta::minutes(15),
            refresh_ttl: TimeDelta::days(30),
            refresh_grace: TimeDelta::milliseconds(DEFAULT_REFRESH_GRACE.as_millis() as i64),
            reset_ttl: TimeDelta::hours(1),
            invitation_ttl: TimeDelta::days(7),
            verification_ttl: TimeDelta::days(7),
            public_url: "http://127.0.0.1:8080".to_owned(),
            mailer: None,
            view_wait: DEFAULT_VIEW_WAIT,
            hashing: HashingLimits::default(),
            login_limits: LoginLimits::default(),
            key_prefixes: KeyPrefixSource::default(),
        }
    }
}

/// A pair of tokens as login, registration and refresh return them.
#[derive(Clone, Debug)]
pub struct TokenPair {
    /// The JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Single-use; exchange it for a new pair.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// What registration created.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The new user.
    pub user_id: Uuid,
    /// Their first organization, which they own.
    pub org_id: Uuid,
    /// Tokens for that organization.
    pub tokens: TokenPair,
}

/// Identity's application service: one per process, shared by every route.
pub struct IdentityService {
    pub(super) pool: PgPool,
    pub(super) progress: FollowerProgress,
    pub(super) users: CommandBus<User>,
    pub(super) emails: CommandBus<EmailClaim>,
    pub(super) organizations: CommandBus<Organization>,
    pub(super) keys: CommandBus<ApiKey>,
    pub(super) key_prefixes: CommandBus<KeyPrefixClaim>,
    pub(super) sessions: CommandBus<Session>,
    pub(super) impersonations: CommandBus<Impersonation>,
    pub(super) invitations: CommandBus<Invitation>,
    pub(super) tokens: TokenKeys,
    pub(super) hashing: PasswordHashing,
    pub(super) login_throttle: LoginThrottle,
    pub(super) config: IdentityConfig,
    pub(super) standing_reads: Arc<StandingReads>,
    /// The standings last read, for write routes that confirm them in their append.
    pub(super) remembered_standings: RememberedStandings,
}

impl IdentityService {
    /// A service over `store`, signing with `tokens`, learning of the identity projector's
    /// progress from `progress`.
    pub fn new(
        store: &EventStore,
        tokens: TokenKeys,
        config: IdentityConfig,
        progress: FollowerProgress,
    ) -> Self {
        Self {
            standing_reads: standing_reads(store.pool()),
            remembered_standings: RememberedStandings::default(),
            pool: store.pool().clone(),
            progress,
            users: CommandBus::new(store.clone(), ()),
            emails: CommandBus::new(store.clone(), ()),
            organizations: CommandBus::new(store.clone(), ()),
            keys: CommandBus::new(store.clone(), ()),
            key_prefixes: CommandBus::new(store.clone(), ()),
            sessions: CommandBus::new(store.clone(), ()),
            impersonations: CommandBus::new(store.clone(), ()),
            invitations: CommandBus::new(store.clone(), ()),
            tokens,
            hashing: PasswordHashing::new(config.hashing),
            login_throttle: LoginThrottle::new(store.pool().clone(), config.login_limits),
            config,
        }
    }

    /// The token keys, for tests and tools that mint tokens.
    pub fn token_keys(&self) -> &TokenKeys {
        &self.tokens
    }

    /// Waits until the identity read model includes `last`, so the caller's next request
    /// (a login, a key's first use, a revoked key's rejection) sees this write on every node.
    ///
    /// Authentication and authorization read that model, so a write it has not reached yet has
    /// not taken effect: after [`IdentityConfig::view_wait`] this answers
    /// [`IdentityError::NotYetEffective`] with `done` (what is already recorded), never success.
    pub(super) async fn wait_for_views(
        &self,
        last: Option<&AppendedEvent>,
        done: &'static str,
    ) -> Result<(), IdentityError> {
        let Some(last) = last else { return Ok(()) };
        let caught_up = self
            .progress
            .wait_for(IDENTITY_VIEW, last.cursor(), self.config.view_wait)
            .await?;
        if !caught_up {
            tracing::warn!(
                wait_seconds = self.config.view_wait.as_secs_f64(),
                "identity read model is behind; the write is recorded but not yet in effect"
            );
            return Err(IdentityError::NotYetEffective(done));
        }
        Ok(())
    }

    /// Waits until the identity read model holds every event committed before this call (on any
    /// node); `false` when it has not within [`IdentityConfig::view_wait`]. For reads that find
    /// nothing where a write of a moment ago may not have arrived yet, so that the write itself
    /// need not wait.
    pub(super) async fn catch_up_views(&self) -> Result<bool, IdentityError> {
        Ok(self
            .progress
            .caught_up_with_log(IDENTITY_VIEW, self.config.view_wait)
            .await?)
    }
}

/// Runs a command's decision on a new aggregate without writing anything: validates input
/// that would otherwise fail halfway through a multi-aggregate operation.
pub(super) async fn dry_run<A>(command: A::Command) -> Result<(), IdentityError>
where
    A: Aggregate<Services = ()>,
    A::Error: Into<IdentityError>,
{
    let mut aggregate = A::default();
    let sink = EventSink::default();
    aggregate.handle(command, &(), &sink).await.map_err(Into::into)
}
