//! What a stream does while it lasts besides sending the run's events: heartbeats, ending when
//! its caller may no longer read or its client is gone, and stopping when the node shuts down.
//! The node's [`StreamWatch`] keeps the time and raises these chores; a stream only takes them.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::Poll;

use commands::identity::Caller;

use super::watch::{ENDED, GONE, HEARTBEAT, STOP, Signal};
use super::{Ending, StreamWatch};

/// A stream's chores, for one caller: its registration with the node's watch.
pub struct Upkeep {
    watch: Arc<StreamWatch>,
    signal: Arc<Signal>,
}

/// What is due.
#[derive(Clone, Debug)]
pub enum Chore {
    /// Send a heartbeat.
    Heartbeat,
    /// End the stream early: the caller's credentials lost their standing, or the node is
    /// shutting down.
    End(Ending),
    /// The client is gone (a WebSocket client silent, or not taking a frame, for the silence
    /// limit): drop the connection.
    Gone,
}

impl Upkeep {
    /// The chores of a stream `caller` opened on this node. `watch_silence`: the client must
    /// show it is there (a WebSocket client answers pings), or be taken for gone.
    pub fn new(watch: &Arc<StreamWatch>, caller: Caller, watch_silence: bool) -> Self {
        Self {
            signal: watch.register(caller, watch_silence),
            watch: Arc::clone(watch),
        }
    }

    /// The caller the stream was opened for (decisions read its standing again).
    pub fn caller(&self) -> &Caller {
        &self.signal.caller
    }

    /// Waits until a chore is due. Cancel-safe: a chore is only taken when it is returned, so
    /// this can wait beside the run's events and the client's messages. An ending, once due,
    /// is returned again on every call.
    pub async fn due(&self) -> Chore {
        poll_fn(|cx| {
            self.signal.waker.register(cx.waker());
            self.take().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// The chore due now, if any.
    fn take(&self) -> Option<Chore> {
        let due = self.signal.due.load(Ordering::Acquire);
        if due & STOP != 0 {
            return Some(Chore::End(Ending::ServerShutdown));
        }
        if due & ENDED != 0 {
            // Set before the flag is raised.
            let ending = self
                .signal
                .ending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(problem) = ending {
                return Some(Chore::End(Ending::Credentials(problem)));
            }
        }
        if due & GONE != 0 {
            return Some(Chore::Gone);
        }
        if due & HEARTBEAT != 0 {
            self.signal.due.fetch_and(!HEARTBEAT, Ordering::AcqRel);
            return Some(Chore::Heartbeat);
        }
        None
    }

    /// How long a client may stay silent, or leave a frame untaken.
    pub fn silence_limit(&self) -> std::time::Duration {
        self.watch.timings().silence_limit()
    }

    /// The client was heard from (a message, a pong).
    pub fn heard(&self) {
        self.watch.heard(&self.signal);
    }

    /// While the returned guard lives, a frame waits for the client to take it; past the
    /// silence limit the client is taken for gone ([`Chore::Gone`]).
    pub fn stuck(&self) -> Stuck<'_> {
        self.watch.stuck(&self.signal, true);
        Stuck(self)
    }
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        self.watch.unregister(&self.signal);
    }
}

/// A frame waiting for the client ([`Upkeep::stuck`]).
pub struct Stuck<'a>(&'a Upkeep);

impl Drop for Stuck<'_> {
    fn drop(&mut self) {
        self.0.watch.stuck(&self.0.signal, false);
    }
}
