//! A person's global identity: email (and whether it is verified), password hash, reset and
//! verification tokens, platform-admin flag.
//! Users are not per organization; memberships live on the organization.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{MAX_OUTSTANDING_RESETS, MAX_VERIFICATION_MAILS_PER_HOUR, User};
pub use commands::UserCommand;
pub use error::UserError;
pub use events::{UserEvent, VerificationProof};
