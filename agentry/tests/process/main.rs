//! The real `agentry` binary as operators run it: commands, defaults, and crashes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_ready;
mod audit_export_memory;
mod cors_setting;
mod crash;
mod follower_health;
mod lost_dispatch;
mod node;
mod private_postgres;
mod process_commands;
mod relay_failover;
mod restore;
mod run_crashes;
mod run_streams;
mod worker_and_readiness;
