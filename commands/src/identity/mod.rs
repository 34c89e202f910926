//! Identity and tenancy: registration, email verification, login, tokens, API keys, members
//! and invitations, platform
//! administration, and the resolution of every request's caller.
//!
//! Decisions live in the domain aggregates (`organization`, `user`, `email_claim`, `api_key`,
//! `session`, `impersonation`, `invitation`); this module looks up what they need, hashes and signs, and
//! reads the `identity` read model for look-ups (user by email, key by prefix, memberships).

mod admin;
mod api_keys;
mod authenticate;
mod caller;
mod email_claims;
mod email_verification;
mod error;
mod guarded_caller;
mod hash_memory;
mod invitations;
mod key_prefixes;
mod login_throttle;
mod mailer;
mod members;
mod password_reset;
mod passwords;
mod registration;
mod remembered_standings;
mod secrets;
mod service;
mod sessions;
mod standings;
mod stream_tickets;
mod successors;
mod tokens;

pub use admin::StartedImpersonation;
pub use api_keys::CreatedKey;
pub use caller::{Caller, CallerIds};
pub use email_verification::UserProfile;
pub use error::{CredentialError, Denial, IdentityError};
pub use guarded_caller::GuardedCaller;
pub use invitations::{Joined, SentInvitation};
pub use key_prefixes::KeyPrefixSource;
pub use login_throttle::{ClientAddress, LoginLimits};
pub use mailer::Mailer;
pub use passwords::{DEFAULT_HASH_WAIT, HashingLimits};
pub use projections::identity::queries::{KeySummary, MemberRow, UserRow};
pub use service::{
    DEFAULT_REFRESH_GRACE, DEFAULT_VIEW_WAIT, IdentityConfig, IdentityService, Registered, TokenPair,
};
pub(crate) use stream_tickets::record_ticket;
pub use stream_tickets::{IssuedTicket, STREAM_TICKET_TTL};
pub use tokens::{AccessClaims, TokenKeys, signing_secret};

/// The identity read model's name, which writes wait on to become visible.
pub use projections::IDENTITY as IDENTITY_VIEW;
/// The identity read model's queries (kept beside its folds in `projections`).
use projections::identity::queries as lookups;
