//! A run's events over HTTP: Server-Sent Events and WebSocket, the credentials they are opened
//! with (bearer or stream ticket), and what a stream does while it lasts besides sending
//! events (heartbeats, standing checks, ending on shutdown: [`StreamWatch`] keeps the time of
//! every stream of the node).
//!
//! The events themselves come from the `streams` crate ([`streams::RunStream`]): every event of the run
//! after the id the client resumes from, each once, in order, then the end. This module only
//! carries them and says why a stream stops early ([`Ending`]).

mod auth;
mod client_messages;
mod endings;
mod open;
mod socket;
mod sse;
mod standing;
mod timings;
mod upkeep;
mod watch;

pub use auth::{StreamAuth, TicketAuth};
pub use endings::{Ending, MAX_CLOSE_REASON_BYTES, RUN_ENDED};
pub use open::{RunStreamMessage, open_stream};
pub use socket::{SocketUpgrade, socket_config};
pub use sse::EventStreamAnswer;
pub use timings::StreamTimings;
pub use upkeep::{Chore, Stuck, Upkeep};
pub use watch::StreamWatch;

/// Counts a stream while it is open (`agentry_stream_connections{transport}`).
pub(crate) struct OpenStreamGauge(&'static str);

impl OpenStreamGauge {
    pub(crate) fn new(transport: &'static str) -> Self {
        metrics::gauge!("agentry_stream_connections", "transport" => transport).increment(1.0);
        Self(transport)
    }
}

impl Drop for OpenStreamGauge {
    fn drop(&mut self) {
        metrics::gauge!("agentry_stream_connections", "transport" => self.0).decrement(1.0);
    }
}

/// Counts a stream ended before its run (`agentry_stream_endings_total{transport, reason}`).
pub(crate) fn count_ending(transport: &'static str, ending: &Ending) {
    metrics::counter!("agentry_stream_endings_total", "transport" => transport, "reason" => ending.reason())
        .increment(1);
}
