//! One run's stream on one node: frames from the live path and from the store, put in id order
//! with no hole and no repeat, then fanned out to every local reader.
//!
//! Frames arrive out of order or not at all (the live path is best effort, and an event made
//! by another node may arrive before the chunks before it). The feed holds back a frame until
//! every id before it was sent, and reads the store when a hole lasts: a lost chunk is
//! recorded within the executor's batch window, and ids a stopped executor handed out are
//! accounted for by the `run.resumed` or `run.cancelled` that skips them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::run::Run;
use eventstore::EventStore;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{Router, StreamFrame};

/// How long a hole in the ids may last before the feed reads the store, and again while it
/// lasts.
const HOLE_POLL: Duration = Duration::from_millis(50);
/// A run that sent nothing for this long is read from the store (a lost last frame, such as the
/// run's end, is found this way), then at doubling intervals up to [`QUIET_POLL_MAX`].
const QUIET_POLL: Duration = Duration::from_secs(1);
/// The longest interval between store reads of a quiet run.
const QUIET_POLL_MAX: Duration = Duration::from_secs(8);
/// A feed nobody reads is retired after this long.
const UNREAD_GRACE: Duration = Duration::from_secs(5);
/// Frames held back behind a hole, at most; the newest beyond are dropped (the store has them
/// or will).
const MAX_HELD: usize = 8_192;

/// How a feed buffers.
#[derive(Clone, Copy, Debug)]
pub struct FeedLimits {
    /// Frames each reader may fall behind before it is cut off (told to resume by id).
    pub reader_queue: usize,
    /// Recent frames kept for readers joining mid-run: the seam between what a joining reader
    /// reads from the store and what it receives live. Must exceed the chunks an executor may
    /// have sent live and not recorded (its batch size).
    pub recent: usize,
}

impl Default for FeedLimits {
    fn default() -> Self {
        Self {
            reader_queue: 1_024,
            recent: 1_024,
        }
    }
}

/// The part of a feed its readers join.
#[derive(Debug)]
pub(crate) struct Feed {
    shared: Mutex<Shared>,
    sender: broadcast::Sender<Arc<StreamFrame>>,
    recent_limit: usize,
}

#[derive(Debug)]
struct Shared {
    /// The id the next frame sent must account for.
    next: u64,
    /// The last frames sent, oldest first.
    recent: VecDeque<Arc<StreamFrame>>,
    /// Whether the run's last frame was sent.
    ended: bool,
}

/// What a reader gets on joining: the recent frames and every later one.
pub(crate) struct Joined {
    pub(crate) recent: Vec<Arc<StreamFrame>>,
    pub(crate) live: broadcast::Receiver<Arc<StreamFrame>>,
}

impl Feed {
    /// A feed that has sent `history` (the run's recorded frames, in order).
    pub(crate) fn new(history: &[Arc<StreamFrame>], limits: FeedLimits) -> Self {
        let recent: VecDeque<_> = history
            .iter()
            .skip(history.len().saturating_sub(limits.recent))
            .cloned()
            .collect();
        Self {
            shared: Mutex::new(Shared {
                next: history.last().map_or(1, |frame| frame.id + 1),
                ended: history.last().is_some_and(|frame| frame.terminal),
                recent,
            }),
            sender: broadcast::channel(limits.reader_queue.max(1)).0,
            recent_limit: limits.recent.max(1),
        }
    }

    /// A new reader; atomic with respect to sending, so it misses nothing between the recent
    /// frames and the live ones.
    pub(crate) fn join(&self) -> Joined {
        let shared = self.lock();
        Joined {
            recent: shared.recent.iter().cloned().collect(),
            live: self.sender.subscribe(),
        }
    }

    /// Readers still joined.
    pub(crate) fn readers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub(crate) fn ended(&self) -> bool {
        self.lock().ended
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The task that keeps a feed going: takes frames from its inbox and the store, in order.
pub(crate) struct Follower {
    pub(crate) run_id: Uuid,
    pub(crate) feed: Arc<Feed>,
    pub(crate) store: EventStore,
    /// The run's events read from the store so far (its version).
    pub(crate) read_version: usize,
    /// Frames that came before the ids preceding them, by id.
    held: BTreeMap<u64, Arc<StreamFrame>>,
}

impl Follower {
    pub(crate) fn new(run_id: Uuid, feed: Arc<Feed>, store: EventStore, read_version: usize) -> Self {
        Self {
            run_id,
            feed,
            store,
            read_version,
            held: BTreeMap::new(),
        }
    }

    /// Runs until the run ends or nobody reads it, then retires the feed from `router`.
    pub(crate) async fn run(mut self, mut inbox: mpsc::Receiver<Arc<StreamFrame>>, router: Router) {
        let mut quiet = QUIET_POLL;
        let mut last_heard = Instant::now();
        let mut hole_since: Option<Instant> = None;
        let mut unread_since: Option<Instant> = None;
        loop {
            if self.feed.ended() {
                break;
            }
            if self.feed.readers() == 0 {
                let since = *unread_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNREAD_GRACE && retire(&router, self.run_id, &self.feed) {
                    return;
                }
            } else {
                unread_since = None;
            }
            let deadline = match hole_since {
                Some(since) => since + HOLE_POLL,
                None => (last_heard + quiet).min(Instant::now() + UNREAD_GRACE),
            };
            tokio::select! {
                frame = inbox.recv() => {
                    let Some(frame) = frame else { break };
                    self.accept(frame);
                    last_heard = Instant::now();
                    quiet = QUIET_POLL;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if hole_since.is_some() || last_heard + quiet <= Instant::now() {
                        self.read_store().await;
                        if hole_since.is_none() {
                            last_heard = Instant::now();
                            quiet = (quiet * 2).min(QUIET_POLL_MAX);
                        }
                    }
                }
            }
            hole_since = match (self.held.is_empty(), hole_since) {
                (true, _) => None,
                (false, None) => Some(Instant::now()),
                // Still a hole after a store read: read again a little later.
                (false, Some(since)) if since + HOLE_POLL <= Instant::now() => Some(Instant::now()),
                (false, since) => since,
            };
        }
        // Ended (every reader has the last frame) or the node stopped delivering.
        while !retire(&router, self.run_id, &self.feed) {
            tokio::time::sleep(UNREAD_GRACE).await;
        }
    }

    /// Reads the run's events recorded since the last read and takes their frames.
    async fn read_store(&mut self) {
        let key = self.run_id.to_string();
        match self.store.load::<Run>(&key, self.read_version).await {
            Ok(events) => {
                for (version, event) in events {
                    self.read_version = version;
                    for frame in StreamFrame::of_event(self.run_id, &event) {
                        self.accept(Arc::new(frame));
                    }
                }
            }
            Err(error) => tracing::warn!(%error, run = %self.run_id, "could not read the run's events"),
        }
    }

    /// Sends `frame` if it is next, holds it if ids before it are missing, drops it if sent.
    fn accept(&mut self, frame: Arc<StreamFrame>) {
        let mut shared = self.feed.lock();
        if frame.id < shared.next || shared.ended {
            return;
        }
        if frame.covers_from > shared.next {
            if self.held.len() < MAX_HELD {
                self.held.insert(frame.id, frame);
            }
            return;
        }
        self.send(&mut shared, frame);
        // Held frames that are now next (in id order; one that skips ids may come before
        // frames it makes void).
        loop {
            let next = shared.next;
            self.held.retain(|id, _| *id >= next);
            let Some(id) = self
                .held
                .iter()
                .find(|(_, held)| held.covers_from <= next)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(frame) = self.held.remove(&id) {
                self.send(&mut shared, frame);
            }
        }
    }

    fn send(&self, shared: &mut Shared, frame: Arc<StreamFrame>) {
        shared.next = frame.id + 1;
        shared.ended = frame.terminal;
        if shared.recent.len() >= self.feed.recent_limit {
            shared.recent.pop_front();
        }
        shared.recent.push_back(Arc::clone(&frame));
        // No reader is not an error: the frame stays in `recent` for the next one.
        let _ = self.feed.sender.send(frame);
    }
}

/// Removes `feed` from `router` if it is still the run's feed and nobody reads it (or the run
/// ended); `false` when a reader joined meanwhile.
fn retire(router: &Router, run_id: Uuid, feed: &Arc<Feed>) -> bool {
    let mut feeds = router.lock();
    let Some(entry) = feeds.get(&run_id) else {
        return true;
    };
    if !Arc::ptr_eq(&entry.feed, feed) {
        return true;
    }
    if feed.readers() > 0 && !feed.ended() {
        return false;
    }
    feeds.remove(&run_id);
    true
}
