//! The organization (tenant): its name, its members and their roles, and whether a platform
//! administrator has suspended it.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{MAX_NAME_CHARS, MAX_REASON_CHARS, Organization};
pub use commands::OrganizationCommand;
pub use error::OrganizationError;
pub use events::{CREATED_EVENT_TYPE, CREATED_EVENT_VERSION, OrganizationEvent};
