use domain::api_key::ApiKeyError;
use domain::email_claim::EmailClaimError;
use domain::impersonation::ImpersonationError;
use domain::invitation::InvitationError;
use domain::key_prefix_claim::KeyPrefixClaimError;
use domain::organization::OrganizationError;
use domain::session::SessionError;
use domain::user::UserError;
use domain::{EmailError, PasswordPolicyError};
use thiserror::Error;

use eventstore::{CommandError, StoreError};

/// Everything identity operations can answer besides success. The API maps each variant (and
/// each variant of the domain refusals it carries) to one problem with its own stable code, by
/// exhaustive matches: a new refusal cannot reach clients without a code. Nothing here carries a
/// secret, and no variant carries free text a client would have to parse.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The email is not a usable address.
    #[error("invalid email: {0}")]
    InvalidEmail(#[from] EmailError),
    /// The new password breaks the password rule (the message states the rule).
    #[error("{0}")]
    WeakPassword(#[from] PasswordPolicyError),
    /// Another account already uses this email.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Wrong email or password (deliberately not saying which).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// A login named an organization the user is not a member of.
    #[error("you are not a member of that organization")]
    NotAMemberOfOrganization,
    /// The user belongs to no organization they could log in to.
    #[error("you are not a member of any organization")]
    NoOrganization,
    /// A bearer credential or emailed link that is not (or no longer) accepted.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The organization is suspended by the platform.
    #[error("the organization is suspended")]
    OrganizationSuspended,
    /// Valid credentials that may not do this.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// An organization refused the command.
    #[error(transparent)]
    Organization(#[from] OrganizationError),
    /// An API key refused the command.
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    /// A user refused the command.
    #[error(transparent)]
    User(#[from] UserError),
    /// An impersonation refused the command.
    #[error(transparent)]
    Impersonation(#[from] ImpersonationError),
    /// An invitation refused to be accepted.
    #[error(transparent)]
    Invitation(#[from] InvitationError),
    /// The caller has not verified their email address, which inviting requires (our mail
    /// must not be a relay for throwaway accounts).
    #[error(
        "verify your email address before inviting members (see the link mailed at registration, or ask for a new one)"
    )]
    EmailNotVerified,
    /// Mail cannot be sent (not configured, or the mail server refused): the text says what
    /// happened to the request.
    #[error("{0}")]
    MailUnavailable(&'static str),
    /// The address is well-formed for an account but mail cannot be addressed to it.
    #[error("mail cannot be sent to this address")]
    UndeliverableEmail,
    /// The same resource changed concurrently too often; retrying may succeed.
    #[error("the resource changed concurrently; retry")]
    Busy,
    /// Every database connection of this node stayed busy past the pool's wait: an overload,
    /// not a failure; retrying shortly may succeed.
    #[error("the database is busy; retry shortly")]
    DatabaseBusy,
    /// The event store refused what the request would record (too large, or text it can
    /// never store): the caller's input, not our failure.
    #[error(transparent)]
    Unstorable(StoreError),
    /// The write is committed, but the read model that authentication and authorization use has
    /// not caught up with it in time, so it is not in effect yet; it will be without another
    /// request. The text says what was recorded; repeating the request would do it twice.
    #[error(
        "{0}: the change is recorded and will take effect on its own, but is not in effect yet because the service is behind; do not repeat this request, and retry what depends on it later"
    )]
    NotYetEffective(&'static str),
    /// A lookup found nothing, and the read model it reads is behind the log, so a write of a
    /// moment ago (a registration answered `NotYetEffective`) may not be in it yet: retry soon,
    /// rather than be told "unknown" about what exists.
    #[error("the service is catching up with recent changes; retry shortly")]
    CatchingUp,
    /// Password hashing is saturated (every permit taken and the bounded queue full, or no
    /// permit came free in the short wait): retry after the given seconds.
    #[error("the service is busy checking passwords; retry in {retry_after_seconds} s")]
    HashingBusy {
        /// Seconds to wait before retrying.
        retry_after_seconds: u64,
    },
    /// Too many failed logins for this account from this address (or for this account from
    /// everywhere): refused, even with the right password, for the given seconds.
    #[error("too many failed login attempts; retry in {retry_after_seconds} s")]
    TooManyAttempts {
        /// Seconds until attempts are admitted again.
        retry_after_seconds: u64,
    },
    /// An idempotency key sent again with another request than the one it first came with
    /// (the text names what differs): refused, never answered with the first request's result,
    /// which would pass one request off as another. Shared by every operation that takes a key.
    #[error("this Idempotency-Key was first sent with a different {0}; send a new key for a new request")]
    IdempotencyKeyReused(&'static str),
    /// An append's connection was lost after it may have reached the database
    /// (`StoreError::OutcomeUnknown`): it may or may not be recorded, so the caller repeats
    /// with its idempotency key or reads first. The detail is for logs only.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A failure on our side; the detail is for logs only.
    #[error("internal: {0}")]
    Internal(String),
}

/// Why a bearer credential (access token, refresh token, API key) or an emailed link was not
/// accepted. The API answers each with 401 and its own code, so a client knows whether to
/// refresh, log in again, or give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CredentialError {
    /// Not a token we signed, or tampered with.
    #[error("the access token is malformed or its signature is invalid")]
    MalformedAccessToken,
    /// An access token past its expiry: refresh it.
    #[error("the access token has expired")]
    AccessTokenExpired,
    /// The token names a user that does not exist.
    #[error("the user of this token does not exist")]
    UnknownUser,
    /// A token without an organization from someone who needs one.
    #[error("this token acts for no organization")]
    NoOrganizationInToken,
    /// The organization of the credentials does not exist.
    #[error("the organization of these credentials does not exist")]
    UnknownOrganization,
    /// The session the token belongs to was ended (logout, reuse, password change).
    #[error("the session of this token has ended; log in again")]
    SessionEnded,
    /// The user was removed from the token's organization.
    #[error("you are no longer a member of this organization")]
    MembershipEnded,
    /// Not an API key we issued.
    #[error("unknown or invalid API key")]
    UnknownApiKey,
    /// A revoked API key.
    #[error("this API key has been revoked")]
    ApiKeyRevoked,
    /// Not a refresh token we issued.
    #[error("unknown or invalid refresh token")]
    InvalidRefreshToken,
    /// A refresh token past its expiry: log in again.
    #[error("the refresh token has expired; log in again")]
    RefreshTokenExpired,
    /// The impersonation this token belongs to was ended early (by an administrator, or by
    /// the user's password reset).
    #[error("this impersonation has been ended")]
    ImpersonationEnded,
    /// A spent refresh token was presented again: its whole family is now revoked.
    #[error("this refresh token was already used; every token of its session has been revoked")]
    RefreshTokenReused,
    /// The password changed since the session began.
    #[error("the password was changed since this session began; log in again")]
    PasswordChanged,
    /// A password reset link that is unknown, used, or superseded.
    #[error("invalid or already used password reset link")]
    InvalidResetToken,
    /// A password reset link past its expiry: ask for a new one.
    #[error("the password reset link has expired; ask for a new one")]
    ResetTokenExpired,
    /// Not a stream ticket this service issued.
    #[error("unknown or invalid stream ticket")]
    InvalidStreamTicket,
    /// A stream ticket that was already used: each works once.
    #[error("this stream ticket was already used; ask for a new one")]
    StreamTicketUsed,
    /// A stream ticket past its expiry.
    #[error("this stream ticket has expired; ask for a new one")]
    StreamTicketExpired,
}

/// Why valid credentials may not do what they asked. The API answers each with 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Denial {
    /// The credentials act for no organization (a platform administrator's own token).
    #[error("these credentials act for no organization")]
    NoOrganization,
    /// The caller's role does not allow the action.
    #[error("the {role} role may not {action}")]
    RoleNotAllowed {
        /// The caller's role (API keys act as `member`).
        role: domain::Role,
        /// What was asked, as "manage members", "read the audit log"…
        action: &'static str,
    },
    /// Only a user, not an API key, may do this.
    #[error("only a logged-in user may {action}, not an API key")]
    UserRequired {
        /// What was asked.
        action: &'static str,
    },
    /// Only platform administrators may do this.
    #[error("only platform administrators may do this")]
    PlatformAdminRequired,
    /// Not with an impersonation token: only the user themself may do this.
    #[error("an impersonation token may not {action}")]
    NotWhileImpersonating {
        /// What was asked.
        action: &'static str,
    },
    /// A stream ticket used for another run than the one it was issued for.
    #[error("this stream ticket is for another run")]
    StreamTicketForAnotherRun,
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EventTooLarge { .. } | StoreError::UnstorableText { .. } => Self::Unstorable(error),
            StoreError::Database(sqlx::Error::PoolTimedOut) => Self::DatabaseBusy,
            StoreError::OutcomeUnknown(text) => Self::OutcomeUnknown(text),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for IdentityError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => Self::DatabaseBusy,
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A session refuses only for reasons about the refresh token presented.
impl From<SessionError> for IdentityError {
    fn from(error: SessionError) -> Self {
        Self::Credential(match error {
            SessionError::Expired => CredentialError::RefreshTokenExpired,
            SessionError::Revoked => CredentialError::SessionEnded,
            SessionError::AlreadyStarted | SessionError::NotFound | SessionError::InvalidToken => {
                CredentialError::InvalidRefreshToken
            }
        })
    }
}

/// The only refusal of an email claim is that someone holds it.
impl From<EmailClaimError> for IdentityError {
    fn from(error: EmailClaimError) -> Self {
        match error {
            EmailClaimError::AlreadyClaimed => Self::EmailTaken,
        }
    }
}

/// A prefix claim refuses only when the prefix is taken; key creation draws another itself, so
/// this reaches callers only when every draw collided, which is our failure, not theirs.
impl From<KeyPrefixClaimError> for IdentityError {
    fn from(error: KeyPrefixClaimError) -> Self {
        match error {
            KeyPrefixClaimError::AlreadyClaimed => {
                Self::Internal("every API key prefix drawn was taken".to_owned())
            }
        }
    }
}

impl<E: Into<IdentityError>> From<CommandError<E>> for IdentityError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(rejection) => rejection.into(),
            CommandError::Conflict => Self::Busy,
            CommandError::Store(store) => store.into(),
        }
    }
}
