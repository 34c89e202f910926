//! What every route shares.

mod auth;
mod auth_rate_limit;
mod body_limit;
mod catch_all;
mod client_address;
mod codes;
mod codes_doc;
mod email_text;
mod identity_errors;
mod observe;
mod problem;
mod rate_limit;
mod schema_refusals;
mod store_errors;
mod text;

pub use auth::BearerAuth;
pub use auth_rate_limit::limit_by_address;
pub use body_limit::BodyLimit;
pub use catch_all::{into_problem, problem_response};
pub use client_address::ResolveClient;
pub use codes::ErrorCode;
pub use codes_doc::error_codes_page;
pub use email_text::EmailText;
pub use observe::{Observe, RequestId};
pub use problem::{ApiError, Problem};
pub use rate_limit::RateLimits;
pub use text::{NO_CONTROL_CHARACTERS, Text};
