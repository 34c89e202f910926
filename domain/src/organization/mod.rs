//! The organization (tenant): its name, its members and their roles, whether a platform
//! administrator has suspended it, and the plan limits (quotas) one has set.

mod aggregate;
mod commands;
mod error;
mod events;
mod quotas;

pub use aggregate::{MAX_NAME_CHARS, MAX_REASON_CHARS, Organization};
pub use commands::OrganizationCommand;
pub use error::OrganizationError;
pub use events::{CREATED_EVENT_TYPE, CREATED_EVENT_VERSION, OrganizationEvent};
pub use quotas::{MAX_CONCURRENT_RUNS, MAX_REQUESTS_PER_MINUTE, MAX_TOKENS_PER_MONTH, QuotaName, Quotas};
