//! Run streams against the real Postgres and the real NATS: one test binary for the crate.

mod merging;
mod nodes;
mod support;
