//! What every route shares.

mod auth;
mod auth_rate_limit;
mod body_limit;
mod browser_origins;
mod catch_all;
mod client_address;
mod codes;
mod codes_doc;
mod cors;
mod email_text;
mod identity_errors;
mod observe;
mod parser_refusals;
mod problem;
mod rate_limit;
mod schema_refusals;
mod store_errors;
mod text;
mod upgrade_origin;

pub use auth::BearerAuth;
pub use auth_rate_limit::limit_by_address;
pub use body_limit::BodyLimit;
pub use browser_origins::{BrowserOrigins, InvalidOrigin};
pub use catch_all::{into_problem, problem_response};
pub use client_address::ResolveClient;
pub use codes::ErrorCode;
pub use codes_doc::error_codes_page;
pub use cors::BrowserCors;
pub use email_text::EmailText;
pub use observe::{Observe, RequestId};
pub use parser_refusals::{ProblemAcceptor, ProblemIo};
pub use problem::{ApiError, Problem};
pub use rate_limit::RateLimits;
pub use text::{NO_CONTROL_CHARACTERS, Text};
pub use upgrade_origin::CheckUpgradeOrigin;
