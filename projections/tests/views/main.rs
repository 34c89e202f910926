//! The read models against the real Postgres, fed through the real command path and runner:
//! one test binary for the crate.

mod api_keys;
mod audit;
mod helpers;
mod organizations;
mod replay;
mod replayed_events;
mod runner_lease;
mod sessions;
mod skipped_moves;
mod standing_plan;
mod users;
