//! What every route shares.

mod body_limit;
mod catch_all;
mod observe;
mod problem;

pub use body_limit::BodyLimit;
pub use catch_all::{into_problem, problem_response};
pub use observe::{Observe, RequestId, route_label};
pub use problem::{ApiError, Problem};
