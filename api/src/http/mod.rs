//! What every route shares.

mod agent_errors;
mod auth;
mod auth_rate_limit;
mod billing_errors;
mod body_limit;
mod browser_origins;
mod catch_all;
mod client_address;
mod codes;
mod codes_doc;
mod cors;
mod email_text;
mod identity_errors;
mod ndjson;
mod no_delay;
mod null_values;
mod observe;
mod org_rate_limit;
mod parser_refusals;
mod problem;
mod quota_errors;
mod rate_limit;
mod run_errors;
mod schema_refusals;
mod signed_body;
mod store_errors;
mod text;
mod text_block;
mod tool_errors;
mod upgrade_origin;

/// Seconds a client waits before retrying when every database connection of the node was busy.
const DATABASE_BUSY_RETRY_AFTER: u64 = 1;

pub use auth::{BearerAuth, WriteBearerAuth};
pub use auth_rate_limit::limit_by_address;
pub use body_limit::BodyLimit;
pub use browser_origins::{BrowserOrigins, InvalidOrigin};
pub use catch_all::{into_problem, problem_json, problem_response};
pub use client_address::ResolveClient;
pub use codes::ErrorCode;
pub use codes_doc::error_codes_page;
pub use cors::BrowserCors;
pub use email_text::EmailText;
pub use ndjson::Ndjson;
pub use no_delay::NoDelayAcceptor;
pub use null_values::RefuseNulls;
pub use observe::{Observe, RequestId};
pub use org_rate_limit::{OrgRateLimits, check_rate_limits};
pub use parser_refusals::{ProblemAcceptor, ProblemIo};
pub use problem::{ApiError, Problem, QuotaName, QuotaReached};
pub use quota_errors::CONCURRENT_RUN_RETRY_AFTER;
pub use rate_limit::RateLimits;
pub use signed_body::SignedBody;
pub use text::{NO_CONTROL_CHARACTERS, Text};
pub use text_block::{NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS, TextBlock};
pub use upgrade_origin::CheckUpgradeOrigin;
