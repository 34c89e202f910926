//! One run's stream on one node: frames from the live path and from the store, put in id order
//! with no hole and no repeat, then fanned out to every local reader.
//!
//! Frames arrive out of order or not at all (the live path is best effort, and an event made
//! by another node may arrive before the chunks before it). The feed holds back a frame until
//! every id before it was sent, and reads the store when a hole lasts: a lost chunk is
//! recorded within the executor's batch window, and ids a stopped executor handed out are
//! accounted for by the `run.resumed` or `run.cancelled` that skips them.
//!
//! A frame is taken in by whoever delivers it (the executor on one node, the node's NATS
//! subscription between nodes), under the feed's lock, and goes to the readers from there: no
//! task and no queue in between, which would each be one more wait behind every other ready
//! task of a busy node. The feed's [`Follower`] task only keeps time: it reads the store when
//! a hole lasts or the run goes quiet, and retires the feed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::run::Run;
use eventstore::EventStore;
use tokio::sync::{Notify, broadcast};
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

/// A run's feed on this node: what its readers join, and where its frames are taken in.
#[derive(Debug)]
pub(crate) struct Feed {
    /// The run's organization: a reader of another never joins.
    org_id: Uuid,
    shared: Mutex<Shared>,
    sender: broadcast::Sender<Arc<StreamFrame>>,
    recent_limit: usize,
    /// Tells the follower a hole opened: its store read is due [`HOLE_POLL`] later.
    hole_opened: Notify,
}

#[derive(Debug)]
struct Shared {
    /// The id the next frame sent must account for.
    next: u64,
    /// The last frames sent, oldest first.
    recent: VecDeque<Arc<StreamFrame>>,
    /// Whether the run's last frame was sent.
    ended: bool,
    /// Frames that came before the ids preceding them, by id.
    held: BTreeMap<u64, Arc<StreamFrame>>,
    /// Since when frames are held behind a hole.
    hole_since: Option<Instant>,
    /// When the live path last delivered a frame.
    last_heard: Instant,
}

/// What a reader gets on joining: the recent frames and every later one.
pub(crate) struct Joined {
    pub(crate) recent: Vec<Arc<StreamFrame>>,
    pub(crate) live: broadcast::Receiver<Arc<StreamFrame>>,
}

impl Feed {
    /// A feed of a run of `org_id` that has sent `history` (the run's recorded frames, in
    /// order).
    pub(crate) fn new(org_id: Uuid, history: &[Arc<StreamFrame>], limits: FeedLimits) -> Self {
        let recent: VecDeque<_> = history
            .iter()
            .skip(history.len().saturating_sub(limits.recent))
            .cloned()
            .collect();
        Self {
            org_id,
            shared: Mutex::new(Shared {
                next: history.last().map_or(1, |frame| frame.id + 1),
                ended: history.last().is_some_and(|frame| frame.terminal),
                recent,
                held: BTreeMap::new(),
                hole_since: None,
                last_heard: Instant::now(),
            }),
            sender: broadcast::channel(limits.reader_queue.max(1)).0,
            recent_limit: limits.recent.max(1),
            hole_opened: Notify::new(),
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

    /// A new reader of `org_id` resuming after `after`, when the recent frames hold every
    /// frame after it (so the store has nothing to add): a node's readers of a run it already
    /// streams join without reading the store. `None` when the recent frames do not reach back
    /// that far, or `after` is beyond what was sent here (ask the store), or the run is another
    /// organization's.
    pub(crate) fn join_after(&self, org_id: Uuid, after: u64) -> Option<Joined> {
        if org_id != self.org_id {
            return None;
        }
        let shared = self.lock();
        let first = shared.recent.front()?;
        if first.covers_from > after + 1 || after >= shared.next {
            return None;
        }
        Some(Joined {
            recent: shared
                .recent
                .iter()
                .filter(|frame| frame.id > after)
                .cloned()
                .collect(),
            live: self.sender.subscribe(),
        })
    }

    /// Readers still joined.
    pub(crate) fn readers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub(crate) fn ended(&self) -> bool {
        self.lock().ended
    }

    /// Takes a frame from the live path: sent to the readers now if it is next, held if ids
    /// before it are missing, dropped if sent already.
    pub(crate) fn accept_live(&self, frame: Arc<StreamFrame>) {
        let mut shared = self.lock();
        shared.last_heard = Instant::now();
        self.accept(&mut shared, frame);
    }

    /// Takes frames read from the store, as [`Self::accept_live`] does.
    fn accept_recorded(&self, frames: impl IntoIterator<Item = Arc<StreamFrame>>) {
        let mut shared = self.lock();
        for frame in frames {
            self.accept(&mut shared, frame);
        }
    }

    fn accept(&self, shared: &mut Shared, frame: Arc<StreamFrame>) {
        if frame.id < shared.next || shared.ended {
            return;
        }
        if frame.covers_from > shared.next {
            if shared.held.len() < MAX_HELD {
                shared.held.insert(frame.id, frame);
            }
            if shared.hole_since.is_none() {
                shared.hole_since = Some(Instant::now());
                self.hole_opened.notify_one();
            }
            return;
        }
        self.send(shared, frame);
        // Held frames that are now next (in id order; one that skips ids may come before
        // frames it makes void).
        while !shared.held.is_empty() {
            let next = shared.next;
            shared.held.retain(|id, _| *id >= next);
            let Some(id) = shared
                .held
                .iter()
                .find(|(_, held)| held.covers_from <= next)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(frame) = shared.held.remove(&id) {
                self.send(shared, frame);
            }
        }
        if shared.held.is_empty() {
            shared.hole_since = None;
        }
    }

    fn send(&self, shared: &mut Shared, frame: Arc<StreamFrame>) {
        shared.next = frame.id + 1;
        shared.ended = frame.terminal;
        if shared.recent.len() >= self.recent_limit {
            shared.recent.pop_front();
        }
        shared.recent.push_back(Arc::clone(&frame));
        // No reader is not an error: the frame stays in `recent` for the next one.
        let _ = self.sender.send(frame);
    }

    /// When the live path last delivered, and since when a hole lasts.
    fn clock(&self) -> (Instant, Option<Instant>) {
        let shared = self.lock();
        (shared.last_heard, shared.hole_since)
    }

    /// A hole that outlasted a store read is read again [`HOLE_POLL`] later.
    fn rearm_hole(&self, now: Instant) {
        let mut shared = self.lock();
        if let Some(since) = shared.hole_since
            && since + HOLE_POLL <= now
        {
            shared.hole_since = Some(now);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The task that keeps a feed's time: reads the store when a hole lasts or the run is quiet,
/// and retires the feed when the run ended or nobody reads it.
pub(crate) struct Follower {
    pub(crate) run_id: Uuid,
    pub(crate) feed: Arc<Feed>,
    pub(crate) store: EventStore,
    /// The run's events read from the store so far (its version).
    pub(crate) read_version: usize,
}

impl Follower {
    pub(crate) fn new(run_id: Uuid, feed: Arc<Feed>, store: EventStore, read_version: usize) -> Self {
        Self {
            run_id,
            feed,
            store,
            read_version,
        }
    }

    /// Runs until the run ends or nobody reads it, then retires the feed from `router`.
    pub(crate) async fn run(mut self, router: Router) {
        let mut quiet = QUIET_POLL;
        // The last delivery the quiet interval was measured from.
        let mut heard_before = self.feed.clock().0;
        let mut read_quietly_at: Option<Instant> = None;
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
            let (last_heard, hole_since) = self.feed.clock();
            if last_heard != heard_before {
                heard_before = last_heard;
                read_quietly_at = None;
                quiet = QUIET_POLL;
            }
            let quiet_from = read_quietly_at.map_or(last_heard, |at| at.max(last_heard));
            let deadline = match hole_since {
                Some(since) => since + HOLE_POLL,
                None => (quiet_from + quiet).min(Instant::now() + UNREAD_GRACE),
            };
            tokio::select! {
                () = self.feed.hole_opened.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    let hole_due = hole_since.is_some_and(|since| since + HOLE_POLL <= now);
                    if hole_due || (hole_since.is_none() && quiet_from + quiet <= now) {
                        self.read_store().await;
                        let now = Instant::now();
                        if hole_due {
                            self.feed.rearm_hole(now);
                        } else {
                            read_quietly_at = Some(now);
                            quiet = (quiet * 2).min(QUIET_POLL_MAX);
                        }
                    }
                }
            }
        }
        // Ended (every reader has the last frame).
        while !retire(&router, self.run_id, &self.feed) {
            tokio::time::sleep(UNREAD_GRACE).await;
        }
    }

    /// Reads the run's events recorded since the last read and takes their frames.
    async fn read_store(&mut self) {
        let key = self.run_id.to_string();
        match self.store.load::<Run>(&key, self.read_version).await {
            Ok(events) => {
                let mut frames = Vec::new();
                for (version, event) in events {
                    self.read_version = version;
                    frames.extend(
                        StreamFrame::of_event(self.run_id, &event)
                            .into_iter()
                            .map(Arc::new),
                    );
                }
                self.feed.accept_recorded(frames);
            }
            Err(error) => tracing::warn!(%error, run = %self.run_id, "could not read the run's events"),
        }
    }
}

/// Removes `feed` from `router` if it is still the run's feed and nobody reads it (or the run
/// ended); `false` when a reader joined meanwhile.
fn retire(router: &Router, run_id: Uuid, feed: &Arc<Feed>) -> bool {
    let mut feeds = router.lock();
    let Some(entry) = feeds.get(&run_id) else {
        return true;
    };
    if !Arc::ptr_eq(entry, feed) {
        return true;
    }
    if feed.readers() > 0 && !feed.ended() {
        return false;
    }
    feeds.remove(&run_id);
    true
}
