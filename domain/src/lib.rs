//! Agentry's domain: aggregates, commands, events and the pure decisions between them.
//!
//! Nothing here does I/O. Whatever a decision needs from outside (ids, password hashes, the
//! current time, a caller's role) is looked up by the application and put into the command,
//! so `handle` can be re-run on an optimistic-concurrency conflict cheaply and safely. Every
//! aggregate uses `type Services = ()`.
//!
//! # Layout
//!
//! One folder per aggregate, each with `aggregate.rs` (state, decisions, `apply`, and the
//! given/when/then tests at the bottom), `commands.rs`, `events.rs` and `error.rs`:
//!
//! | module | aggregate id | what it guards |
//! | --- | --- | --- |
//! | [`organization`] | organization id | members, roles, "always one owner", suspension, plan limits |
//! | [`user`] | user id | credentials, password reset tokens, platform admin flag |
//! | [`email_claim`] | normalized email | one user per email, even under racing registrations |
//! | [`agent`] | agent id | an organization's agent definition, every version kept |
//! | [`conversation`] | conversation id | the pinned agent version, its runs, one active run at a time |
//! | [`run`] | run id | a run's steps, its executor, approvals, the run's stream ids |
//! | [`tool`] | UUID v5 of (organization, name) | an organization's HTTP tool: versioned definition, sealed secret |
//! | [`api_key`] | key id | an organization's key hash, prefix and revocation |
//! | [`key_prefix_claim`] | key prefix | one key per prefix, so prefixes stay unique |
//! | [`session`] | refresh-token family id | refresh-token rotation and theft detection |
//! | [`impersonation`] | impersonation id | an administrator acting as a user, with reason and limit |
//! | [`invitation`] | invitation id | a mailed invitation to join: single use, expiry, addressee |
//! | [`credit_account`] | organization id | the credit ledger: grants, purchases, reservations, charges, refunds |
//!
//! Shared value types: [`Role`] (with the permission checks the API guard uses), [`Actor`]
//! (who caused a change, stored in event metadata), [`EmailAddress`], and the
//! [`password_policy`]. [`upcasting`] lifts old stored event shapes to current ones.
//!
//! # Event conventions
//!
//! Every event enum is serialized internally tagged, `{"type": "<aggregate>.<what_happened>",
//! ...}`, and `DomainEvent::event_type` returns exactly that tag. `event_version` starts at
//! `"1"` and grows when a stored shape changes, together with an upcaster. Aggregate `TYPE`s
//! are single lowercase tokens (they become NATS subject tokens). Every event enum derives
//! `schemars::JsonSchema`: [`event_schema`] turns them into the published payload schemas.
//!
//! # Example
//!
//! The application validates input, looks up what the decision needs, and sends a command:
//!
//! ```
//! use domain::organization::{Organization, OrganizationCommand, OrganizationError};
//! use domain::{EmailAddress, Role, check_new_password};
//! # use cqrs_es::test::TestFramework;
//! # use domain::organization::OrganizationEvent;
//!
//! let email = EmailAddress::parse(" Ann@Example.com ")?;
//! assert_eq!(email.as_str(), "ann@example.com");
//! assert!(check_new_password("ann", &email).is_err());
//!
//! let (owner, admin, newcomer) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
//! let join = OrganizationCommand::JoinByInvitation {
//!     user_id: newcomer,
//!     role: Role::Owner,
//!     invited_by: admin,
//!     invitation_id: uuid::Uuid::new_v4(),
//! };
//! TestFramework::<Organization>::with(())
//!     .given(vec![
//!         OrganizationEvent::Created { name: "Acme".into(), owner_user_id: owner },
//!         OrganizationEvent::MemberAdded { user_id: admin, role: Role::Admin },
//!     ])
//!     .when(join)
//!     .then_expect_error(OrganizationError::InviterNoLongerAuthorized);
//! # Ok::<(), domain::EmailError>(())
//! ```

pub mod actor;
pub mod agent;
pub mod api_key;
pub mod conversation;
pub mod credit_account;
pub mod email;
pub mod email_claim;
pub mod event_schema;
pub mod event_types;
pub mod idempotency;
pub mod impersonation;
pub mod invitation;
pub mod key_prefix_claim;
pub mod organization;
pub mod password_policy;
pub mod role;
pub mod run;
pub mod session;
pub mod tool;
pub mod upcasting;
pub mod user;

pub mod secret;
mod sink;
mod text;

pub use actor::{Actor, ParseActorError};
pub use email::{EmailAddress, EmailError};
pub use password_policy::{PasswordPolicyError, check_new_password};
pub use role::{ParseRoleError, Role};
pub use secret::{PasswordDigest, SealedSecret, TokenDigest, is_credential_field};
