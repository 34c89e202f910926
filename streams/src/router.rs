//! A node's feeds by run: where live frames arriving at the node go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::StreamFrame;
use crate::feed::Feed;

/// Frames waiting for one feed; past this the newest are dropped (the feed finds them in the
/// store when it sees the hole).
pub(crate) const FEED_INBOX: usize = 4_096;

/// A registered feed: its inbox and itself.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) inbox: mpsc::Sender<Arc<StreamFrame>>,
    pub(crate) feed: Arc<Feed>,
}

/// The runs this node has readers of, each with its feed. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Router {
    feeds: Arc<Mutex<HashMap<Uuid, Entry>>>,
}

impl Router {
    /// Hands `frame` to the feed of `run_id` when this node has one; frames of runs nobody
    /// here reads are dropped at once.
    pub fn deliver(&self, run_id: Uuid, frame: Arc<StreamFrame>) {
        let inbox = match self.lock().get(&run_id) {
            Some(entry) => entry.inbox.clone(),
            None => return,
        };
        if inbox.try_send(frame).is_err() {
            metrics::counter!("agentry_stream_feed_dropped_total").increment(1);
        }
    }

    /// Whether this node has readers of `run_id` (so a frame from NATS is worth parsing).
    pub(crate) fn wants(&self, run_id: Uuid) -> bool {
        self.lock().contains_key(&run_id)
    }

    /// The feeds, locked: opening a stream and retiring a feed happen under this lock, so a
    /// reader never joins a feed that is going away.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        // A panic while holding this lock leaves the map itself consistent.
        self.feeds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Feeds open on this node (for metrics and tests).
    pub fn feed_count(&self) -> usize {
        self.lock().len()
    }
}
