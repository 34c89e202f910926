//! An organization's API key: stored only as a hash, found by its prefix, revocable.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{ApiKey, MAX_NAME_CHARS};
pub use commands::ApiKeyCommand;
pub use error::ApiKeyError;
pub use events::ApiKeyEvent;
