//! A node's feeds by run: where live frames arriving at the node go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use crate::StreamFrame;
use crate::feed::Feed;

/// The runs this node has readers of, each with its feed. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Router {
    feeds: Arc<Mutex<HashMap<Uuid, Arc<Feed>>>>,
}

impl Router {
    /// Hands `frame` to the feed of `run_id` when this node has one, which sends it to the
    /// run's readers here and now (in the caller's task); frames of runs nobody here reads
    /// are dropped at once.
    pub fn deliver(&self, run_id: Uuid, frame: Arc<StreamFrame>) {
        if let Some(feed) = self.feed(run_id) {
            feed.accept_live(frame);
        }
    }

    /// The feed of `run_id`, when this node has readers of it (so a frame from NATS is worth
    /// parsing).
    pub(crate) fn feed(&self, run_id: Uuid) -> Option<Arc<Feed>> {
        self.lock().get(&run_id).cloned()
    }

    /// The feeds, locked: opening a stream and retiring a feed happen under this lock, so a
    /// reader never joins a feed that is going away.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Feed>>> {
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
