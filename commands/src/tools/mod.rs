//! Tools: an organization's HTTP tools (create, read, list, update, rotate the secret, delete),
//! and what the runtime needs of them ([`ToolService::resolve`], [`ArgumentValidators`]).
//!
//! Every decision is the `tool` aggregate's; this module scopes each request to the caller's
//! organization (another organization's tool is answered as not found), checks the role
//! (owners, admins and members write, auditors only read), checks that `parameters` is a JSON
//! Schema the validator accepts, and seals the signing secret ([`crate::secret_box`]) before it
//! goes into an event. The secret in clear leaves this module twice only: once in the answer
//! that created or rotated it, and in [`ResolvedTool`] for the runtime to sign calls with.

mod arguments;
mod error;
mod resolve;
mod schema;
mod secret;
mod service;

pub use arguments::{ArgumentError, ArgumentValidators};
pub use error::ToolsError;
pub use resolve::ResolvedTool;
pub use secret::{GENERATED_SECRET_BYTES, MAX_SECRET_BYTES, MIN_SECRET_BYTES};
pub use service::{CreatedTool, ToolPage, ToolService, ToolView};
