//! A person's global identity: email, password hash, reset tokens, platform-admin flag.
//! Users are not per organization; memberships live on the organization.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{MAX_OUTSTANDING_RESETS, User};
pub use commands::UserCommand;
pub use error::UserError;
pub use events::UserEvent;
