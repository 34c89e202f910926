//! The node's watch over its open streams: one task that keeps every stream's time, so that an
//! idle stream holds no timer and is woken only when it has something to do.
//!
//! Each open stream registers a [`Signal`] here. The watch's task ticks every heartbeat / 16:
//! - it raises the heartbeat of one sixteenth of the streams each tick, so each stream is
//!   woken once a heartbeat and the node's pings are spread over time, not sent in one burst;
//! - it finds WebSocket clients silent past the silence limit, or not taking a frame for as
//!   long, and has them dropped;
//! - every standing check it reads the standing of each distinct credentials among the open
//!   streams once ([`super::standing`]) and ends the streams of credentials that lost it;
//! - when the node stops, it ends every stream.
//!
//! A stream is woken through its task's waker, after a flag is raised in its signal: waiting
//! for a chore costs a stream a flag check per wake-up, and no timer or other registration.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use commands::identity::{Caller, IdentityService};
use futures::task::AtomicWaker;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StreamTimings;
use crate::http::Problem;

/// Heartbeats are raised for one of this many groups of streams per tick.
const HEARTBEAT_GROUPS: u64 = 16;

/// Chores raised in a [`Signal`] (bits of `Signal::due`).
pub(super) const HEARTBEAT: u8 = 1;
/// The caller's credentials lost their standing: `Signal::ending` says how.
pub(super) const ENDED: u8 = 2;
/// The client is gone (silent, or not taking a frame, past the silence limit).
pub(super) const GONE: u8 = 4;
/// The node is stopping.
pub(super) const STOP: u8 = 8;

/// One open stream, as the watch and the stream share it.
#[derive(Debug)]
pub(super) struct Signal {
    id: u64,
    /// The caller the stream was opened for.
    pub(super) caller: Caller,
    /// Chores raised and not taken yet.
    pub(super) due: AtomicU8,
    /// The stream's task, woken when a chore is raised.
    pub(super) waker: AtomicWaker,
    /// Why the caller's credentials no longer stand, once [`ENDED`] is raised.
    pub(super) ending: Mutex<Option<Problem>>,
    /// Whether the client must show it is there (WebSocket: pongs or messages).
    watch_silence: bool,
    /// When the client was last heard, in ms of the watch's clock.
    last_heard: AtomicU64,
    /// Since when a frame waits for the client to take it (ms of the watch's clock), 0 when
    /// none does.
    stuck_since: AtomicU64,
}

impl Signal {
    /// Raises `chores` and wakes the stream.
    pub(super) fn raise(&self, chores: u8) {
        self.due.fetch_or(chores, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Ends the stream for `problem` with its credentials.
    pub(super) fn end(&self, problem: Problem) {
        *self.ending.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
        self.raise(ENDED);
    }
}

/// The node's open streams and the task that keeps their time. One per process.
pub struct StreamWatch {
    timings: StreamTimings,
    identity: Arc<IdentityService>,
    /// The watch's clock starts here.
    epoch: Instant,
    streams: Mutex<Registry>,
    stopped: AtomicBool,
    sweeping: AtomicBool,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    signals: HashMap<u64, Arc<Signal>>,
}

impl StreamWatch {
    /// The watch of a node whose streams are timed by `timings`, checked against `identity`,
    /// and all ended when `stopping` is cancelled. Starts its task (which ends with the watch).
    pub fn start(
        timings: StreamTimings,
        identity: Arc<IdentityService>,
        stopping: CancellationToken,
    ) -> Arc<Self> {
        let watch = Arc::new(Self {
            timings,
            identity,
            epoch: Instant::now(),
            streams: Mutex::default(),
            stopped: AtomicBool::new(false),
            sweeping: AtomicBool::new(false),
        });
        tokio::spawn(keep_time(Arc::downgrade(&watch), stopping));
        watch
    }

    /// The node's stream clock.
    pub fn timings(&self) -> StreamTimings {
        self.timings
    }

    /// Registers a stream of `caller`; `watch_silence` when its client must show it is there.
    pub(super) fn register(&self, caller: Caller, watch_silence: bool) -> Arc<Signal> {
        let mut streams = self.lock();
        streams.next_id += 1;
        let signal = Arc::new(Signal {
            id: streams.next_id,
            caller,
            due: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            ending: Mutex::new(None),
            watch_silence,
            last_heard: AtomicU64::new(self.now_ms()),
            stuck_since: AtomicU64::new(0),
        });
        streams.signals.insert(signal.id, Arc::clone(&signal));
        drop(streams);
        // Registered under the lock above, so the stop either saw it or is seen here.
        if self.stopped.load(Ordering::Acquire) {
            signal.raise(STOP);
        }
        signal
    }

    pub(super) fn unregister(&self, signal: &Signal) {
        self.lock().signals.remove(&signal.id);
    }

    /// The client of `signal` was heard from now.
    pub(super) fn heard(&self, signal: &Signal) {
        signal.last_heard.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A frame of `signal`'s stream waits for its client from now (`false`: no longer).
    pub(super) fn stuck(&self, signal: &Signal, stuck: bool) {
        let since = if stuck { self.now_ms().max(1) } else { 0 };
        signal.stuck_since.store(since, Ordering::Relaxed);
    }

    /// Streams open on this node.
    pub fn open_streams(&self) -> usize {
        self.lock().signals.len()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // The map stays consistent whatever panicked while it was held.
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn signals(&self) -> Vec<Arc<Signal>> {
        self.lock().signals.values().cloned().collect()
    }

    /// One tick: the heartbeats of `group`, and the clients gone.
    fn tick(&self, group: u64) {
        let now = self.now_ms();
        let silence = u64::try_from(self.timings.silence_limit().as_millis()).unwrap_or(u64::MAX);
        let streams = self.lock();
        for signal in streams.signals.values() {
            let mut chores = 0;
            if signal.id % HEARTBEAT_GROUPS == group {
                chores |= HEARTBEAT;
            }
            let stuck_since = signal.stuck_since.load(Ordering::Relaxed);
            let silent = signal.watch_silence
                && now.saturating_sub(signal.last_heard.load(Ordering::Relaxed)) >= silence;
            if silent || (stuck_since != 0 && now.saturating_sub(stuck_since) >= silence) {
                chores |= GONE;
            }
            if chores != 0 {
                signal.raise(chores);
            }
        }
    }

    fn stop(&self) {
        let streams = self.lock();
        self.stopped.store(true, Ordering::Release);
        for signal in streams.signals.values() {
            signal.raise(STOP);
        }
    }

    /// Checks the standing of every stream's credentials, unless a check is still running.
    fn sweep(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let watch = Arc::clone(self);
        tokio::spawn(async move {
            super::standing::check_all(&watch.identity, watch.signals()).await;
            watch.sweeping.store(false, Ordering::Release);
        });
    }
}

impl std::fmt::Debug for StreamWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWatch")
            .field("timings", &self.timings)
            .field("open_streams", &self.open_streams())
            .finish_non_exhaustive()
    }
}

/// The watch's task: ticks, standing checks and the stop, until the watch is dropped.
async fn keep_time(watch: Weak<StreamWatch>, stopping: CancellationToken) {
    let Some(timings) = watch.upgrade().map(|watch| watch.timings) else {
        return;
    };
    let tick = timings.heartbeat / HEARTBEAT_GROUPS as u32;
    let tick = tick.max(Duration::from_millis(1));
    let mut next_tick = Instant::now() + tick;
    let mut next_sweep = Instant::now() + timings.standing_check;
    let mut group = 0;
    loop {
        tokio::select! {
            () = stopping.cancelled() => {
                if let Some(watch) = watch.upgrade() {
                    watch.stop();
                }
                return;
            }
            () = tokio::time::sleep_until(next_tick.min(next_sweep)) => {}
        }
        let Some(watch) = watch.upgrade() else { return };
        let now = Instant::now();
        if next_tick <= now {
            watch.tick(group);
            group = (group + 1) % HEARTBEAT_GROUPS;
            next_tick += tick;
        }
        if next_sweep <= now {
            watch.sweep();
            next_sweep = now + timings.standing_check;
        }
    }
}
