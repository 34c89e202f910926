//! Who is calling: resolved once per request from a token or an API key.

use domain::{Actor, Role};
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::{Denial, IdentityError};
use eventstore::CommandContext;

/// The authenticated caller. Every `/v1` route acts for `org_id` from here, never from the
/// request body.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The organization the credentials act for; `None` only for a platform administrator's
    /// own token.
    pub org_id: Option<Uuid>,
    /// The user, for tokens.
    pub user_id: Option<Uuid>,
    /// The API key, for keys.
    pub api_key_id: Option<Uuid>,
    /// The role in `org_id` (API keys act as `member`).
    pub role: Option<Role>,
    /// The administrator behind an impersonation token.
    pub impersonator_id: Option<Uuid>,
    /// Whether the user is a platform administrator (never true while impersonating).
    pub is_platform_admin: bool,
    /// The session (refresh-token family) a user's access token belongs to: when it ends, so
    /// does what the token opened (a stream, a stream ticket).
    pub session_id: Option<Uuid>,
    /// The impersonation an impersonation token belongs to, likewise.
    pub impersonation_id: Option<Uuid>,
}

/// Whose requests these are, for counting them (rate limits): the credentials' ids, which no
/// change of membership, role or suspension alters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallerIds {
    /// The organization the credentials act for, if any.
    pub org_id: Option<Uuid>,
    /// The user, for tokens.
    pub user_id: Option<Uuid>,
    /// The API key, for keys.
    pub api_key_id: Option<Uuid>,
}

impl Caller {
    /// Its ids, for counting its requests.
    pub fn ids(&self) -> CallerIds {
        CallerIds {
            org_id: self.org_id,
            user_id: self.user_id,
            api_key_id: self.api_key_id,
        }
    }

    /// Who events written for this caller name as their actor.
    pub fn actor(&self) -> Actor {
        match (self.user_id, self.api_key_id) {
            (_, Some(id)) => Actor::ApiKey { id },
            (Some(id), None) => Actor::User { id },
            (None, None) => Actor::System,
        }
    }

    /// The event metadata for a command issued by this caller in the request `origin`.
    pub fn context(&self, origin: Option<RequestOrigin>) -> CommandContext {
        CommandContext {
            actor: self.actor(),
            org_id: self.org_id,
            request: origin,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            impersonator_id: self.impersonator_id,
        }
    }

    /// The organization, or 403 for credentials that act for none.
    pub fn org(&self) -> Result<Uuid, IdentityError> {
        self.org_id.ok_or(IdentityError::Denied(Denial::NoOrganization))
    }

    /// The caller's role when `allowed` accepts it; 403 naming `action` otherwise.
    pub fn require(&self, allowed: fn(Role) -> bool, action: &'static str) -> Result<Role, IdentityError> {
        match self.role {
            Some(role) if allowed(role) => Ok(role),
            Some(role) => Err(Denial::RoleNotAllowed { role, action }.into()),
            None => Err(Denial::NoOrganization.into()),
        }
    }
}
