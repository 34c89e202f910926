//! Test support shared by Agentry's test suites (a dev-dependency only): a private
//! `nats-server` a test may kill, readers of what the relay put in JetStream,
//! [`FakeLlm`], an OpenAI-compatible provider scripted by the test, and Postgres backends
//! frozen with SIGSTOP ([`FrozenBackends`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_llm;
mod frozen;
mod nats;
mod stream;

pub use fake_llm::{FakeLlm, RecordedRequest, Reply};
pub use frozen::FrozenBackends;
pub use nats::{PrivateNats, free_port};
pub use stream::{id_counts, stream_events};
