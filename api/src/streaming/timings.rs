//! How often a stream does its chores, and the bounds that follow from them.

use std::time::Duration;

/// A run stream's clock. The defaults are the documented bounds; tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTimings {
    /// Between heartbeats (an SSE comment line, a WebSocket ping), so that idle proxies keep
    /// the connection. A WebSocket client that answers nothing (no pong, no message) for two
    /// of these is closed, and a send the client does not take within two is given up: either
    /// way its resources are freed.
    pub heartbeat: Duration,
    /// Between checks that the caller's credentials still stand (a revoked key, a removed
    /// member, a suspended organization end the stream).
    pub standing_check: Duration,
    /// How long one check's answer is shared by the node's other streams of the same
    /// credentials (10,000 streams of one key cost one query, not 10,000). A change of standing
    /// ends a stream within `standing_check + standing_shared_for`.
    pub standing_shared_for: Duration,
}

impl Default for StreamTimings {
    /// A heartbeat every 15 s; standing checked every 4 s and shared for 1 s: a revocation ends
    /// the stream within 5 s.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            standing_check: Duration::from_secs(4),
            standing_shared_for: Duration::from_secs(1),
        }
    }
}

impl StreamTimings {
    /// How long a WebSocket client may stay silent, or leave a send untaken, before it is
    /// taken for gone.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat * 2
    }

    /// Within how long a change of the caller's standing ends a stream.
    pub fn standing_bound(&self) -> Duration {
        self.standing_check + self.standing_shared_for
    }
}
