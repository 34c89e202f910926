//! The real `agentry` binary as operators run it: commands, defaults, and crashes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_ready;
mod crash;
mod node;
mod private_postgres;
mod process_commands;
mod worker_and_readiness;
