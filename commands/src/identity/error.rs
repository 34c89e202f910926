use domain::api_key::ApiKeyError;
use domain::impersonation::ImpersonationError;
use domain::organization::OrganizationError;
use domain::session::SessionError;
use domain::user::UserError;
use domain::{EmailError, PasswordPolicyError};
use thiserror::Error;

use eventstore::{CommandError, StoreError};

/// Everything identity operations can answer besides success. The API maps each variant to
/// one problem response; nothing here carries a secret.
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
    /// The user belongs to no organization they could log in to.
    #[error("{0}")]
    NoOrganization(String),
    /// A token or key that is malformed, unknown, or signed by someone else.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// A token that was valid but has expired.
    #[error("the token has expired")]
    TokenExpired,
    /// A spent refresh token was presented again: its whole family is now revoked.
    #[error("this refresh token was already used; every token of its session has been revoked")]
    RefreshTokenReused,
    /// The organization is suspended by the platform.
    #[error("the organization is suspended")]
    OrganizationSuspended,
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource in the caller's organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A business rule refused the request.
    #[error("{0}")]
    Rejected(String),
    /// The same resource changed concurrently too often; retrying may succeed.
    #[error("the resource changed concurrently; retry")]
    Busy,
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
    /// A failure on our side; the detail is for logs only.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EventTooLarge { .. } | StoreError::UnstorableText { .. } => Self::Unstorable(error),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for IdentityError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.to_string())
    }
}

/// How each aggregate's refusals read for API clients.
pub(crate) trait RejectionKind: std::error::Error {
    /// `NotFound` when the refusal means "no such thing", else a plain rejection.
    fn into_identity_error(self) -> IdentityError
    where
        Self: Sized,
    {
        IdentityError::Rejected(self.to_string())
    }
}

impl RejectionKind for OrganizationError {
    fn into_identity_error(self) -> IdentityError {
        match self {
            Self::NotFound => IdentityError::NotFound("organization"),
            Self::NotAMember => IdentityError::NotFound("member"),
            Self::NotPermitted { .. } | Self::OwnerRoleRequired | Self::ActorNotAMember => {
                IdentityError::Forbidden(self.to_string())
            }
            other => IdentityError::Rejected(other.to_string()),
        }
    }
}

impl RejectionKind for ApiKeyError {
    fn into_identity_error(self) -> IdentityError {
        match self {
            Self::NotFound => IdentityError::NotFound("API key"),
            other => IdentityError::Rejected(other.to_string()),
        }
    }
}

impl RejectionKind for SessionError {
    fn into_identity_error(self) -> IdentityError {
        match self {
            Self::Expired => IdentityError::TokenExpired,
            Self::Revoked => IdentityError::InvalidToken("the session of this refresh token has ended"),
            _ => IdentityError::InvalidToken("unknown or invalid refresh token"),
        }
    }
}

impl RejectionKind for UserError {
    fn into_identity_error(self) -> IdentityError {
        match self {
            Self::ResetTokenInvalid | Self::ResetTokenExpired | Self::NotFound => {
                IdentityError::InvalidToken("invalid or expired password reset token")
            }
            other => IdentityError::Rejected(other.to_string()),
        }
    }
}

impl RejectionKind for ImpersonationError {
    fn into_identity_error(self) -> IdentityError {
        match self {
            Self::NotFound => IdentityError::NotFound("impersonation"),
            other => IdentityError::Rejected(other.to_string()),
        }
    }
}
impl RejectionKind for domain::key_prefix_claim::KeyPrefixClaimError {}
impl RejectionKind for domain::email_claim::EmailClaimError {
    fn into_identity_error(self) -> IdentityError {
        IdentityError::EmailTaken
    }
}

impl<E: RejectionKind> From<CommandError<E>> for IdentityError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(rejection) => rejection.into_identity_error(),
            CommandError::Conflict => Self::Busy,
            CommandError::Store(store) => store.into(),
        }
    }
}
