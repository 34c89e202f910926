//! Test support shared by Agentry's test suites (a dev-dependency only): a private
//! `nats-server` a test may kill, and readers of what the relay put in JetStream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nats;
mod stream;

pub use nats::{PrivateNats, free_port};
pub use stream::{id_counts, stream_events};
