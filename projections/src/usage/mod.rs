//! Organization usage per UTC day (months are sums of days): runs, model calls, tokens and
//! credits, kept by the `usage` projector and read by `GET /v1/usage`.

mod projector;
pub mod queries;

pub use projector::{USAGE, UsageProjector};
pub use queries::{Period, UsagePeriod, tokens_since, usage_by_period};
