//! Per-organization plan limits (quotas): reading them with their current use, and enforcing
//! them where work starts.
//!
//! A platform administrator sets the limits on the organization aggregate
//! (`organization.quotas_set`, see `IdentityService::set_organization_quotas`); the identity
//! projector keeps them in the `organizations` view, which is what this module reads.
//!
//! - [`admission`]: the check a run's start makes first: tokens this month (402) and runs
//!   not ended (429), the latter exact under racing starts;
//! - `plan_cache`: each node's short-lived copy of the request-rate limits, which the HTTP
//!   layer's per-organization bucket reads on every request;
//! - `report`: `GET /v1/billing/quotas`, every limit with its use and reset time;
//! - `error`: what an exceeded limit answers.

pub mod admission;
mod error;
mod locks;
mod months;
mod plan_cache;
mod report;
mod service;

pub use admission::RunAdmission;
pub use error::{QuotaError, QuotaExceeded};
pub use months::{month_start, next_month_start};
pub use plan_cache::PLAN_CACHE_TTL;
pub use report::QuotaReport;
pub use service::QuotaService;
