//! A refresh-token family: one sign-in, its rotating refresh tokens, and their revocation.
//! The aggregate id is the family id; every refresh token of the family hashes into it.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::Session;
pub use commands::SessionCommand;
pub use error::SessionError;
pub use events::{RevocationReason, SessionEvent};
