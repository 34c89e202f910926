//! How often a stream does its chores, and the bounds that follow from them.

use std::time::Duration;

/// How long a round of standing checks may take, at most, for the documented bound (a round
/// checks each distinct credentials of the node's open streams once).
const STANDING_ROUND: Duration = Duration::from_secs(1);

/// A run stream's clock. The defaults are the documented bounds; tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTimings {
    /// Between heartbeats (an SSE comment line, a WebSocket ping), so that idle proxies keep
    /// the connection. A WebSocket client that answers nothing (no pong, no message) for two
    /// of these is closed, and a send the client does not take within two is given up: either
    /// way its resources are freed.
    pub heartbeat: Duration,
    /// Between rounds of checks that the callers' credentials still stand (a revoked key, a
    /// removed member, a suspended organization end the stream). A round checks each distinct
    /// credentials of the node's open streams once: 10,000 streams of one key cost one query.
    pub standing_check: Duration,
}

impl Default for StreamTimings {
    /// A heartbeat every 15 s; standing checked every 4 s: a revocation ends the stream within
    /// 5 s.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            standing_check: Duration::from_secs(4),
        }
    }
}

impl StreamTimings {
    /// How long a WebSocket client may stay silent, or leave a send untaken, before it is
    /// taken for gone (noticed within a sixteenth of a heartbeat more).
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat * 2
    }

    /// Within how long a change of the caller's standing ends a stream.
    pub fn standing_bound(&self) -> Duration {
        self.standing_check + STANDING_ROUND
    }
}
