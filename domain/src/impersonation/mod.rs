//! A platform administrator acting as a user, for a stated reason and a bounded time, so
//! that support work is possible and always attributable.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Impersonation, MAX_DURATION, MAX_REASON_CHARS};
pub use commands::ImpersonationCommand;
pub use error::ImpersonationError;
pub use events::ImpersonationEvent;
