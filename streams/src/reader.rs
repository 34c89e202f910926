//! One reader of a run's stream: what it missed from the store, then the node's feed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::run::Run;
use eventstore::EventStore;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::StreamFrame;

/// How often, and how many times, a reader that finds a hole at its seam reads the store
/// before it gives up and asks its client to resume.
const REPAIR_EVERY: Duration = Duration::from_millis(50);
const REPAIR_ATTEMPTS: u32 = 40;

/// What a reader gets next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// The next event: its id is the reader's last plus one, or it skips ids that never carried
    /// an event the reader could have had.
    Frame(Arc<StreamFrame>),
    /// The run's last event was sent: the stream is over.
    Ended,
    /// The reader fell too far behind (a slow client) or the stream broke: the client should
    /// reconnect and resume after `last_id`, the last id it was sent.
    CutOff {
        /// The last id sent to this reader.
        last_id: u64,
    },
}

/// A run's events for one reader, from just after the id it resumes from, each once, in order.
pub struct RunStream {
    run_id: Uuid,
    store: EventStore,
    /// Frames to send before the live ones (from the store, then the feed's recent frames).
    backlog: VecDeque<Arc<StreamFrame>>,
    /// The node's feed of the run; `None` when the run had ended when the stream opened.
    live: Option<broadcast::Receiver<Arc<StreamFrame>>>,
    /// The id the next frame must account for.
    next: u64,
    /// The run's events read from the store (its version), for repairs.
    read_version: usize,
    /// The feed stopped before the run's end: only the store can say more.
    orphaned: bool,
    ended: bool,
}

impl RunStream {
    pub(crate) fn new(
        run_id: Uuid,
        store: EventStore,
        backlog: VecDeque<Arc<StreamFrame>>,
        live: Option<broadcast::Receiver<Arc<StreamFrame>>>,
        after: u64,
        read_version: usize,
    ) -> Self {
        Self {
            run_id,
            store,
            backlog,
            live,
            next: after + 1,
            read_version,
            orphaned: false,
            ended: false,
        }
    }

    /// The run.
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// The last id sent (or resumed after).
    pub fn last_id(&self) -> u64 {
        self.next - 1
    }

    /// The next item. Cancel-safe when waiting on the live feed (a frame is only taken when it
    /// is returned), so it can sit in a `select!` with heartbeats and the client's messages.
    pub async fn next(&mut self) -> StreamItem {
        let mut repairs = 0;
        loop {
            if self.ended {
                return StreamItem::Ended;
            }
            let frame = match self.backlog.pop_front() {
                Some(frame) => {
                    // A reader that caught up on a long run waits idle from here: drop the
                    // backlog's room (it would otherwise stay about 8 bytes per event caught up).
                    if self.backlog.is_empty() {
                        self.backlog = VecDeque::new();
                    }
                    frame
                }
                None => match self.live.as_mut() {
                    None if !self.orphaned => {
                        self.ended = true;
                        return StreamItem::Ended;
                    }
                    None => {
                        // Boxed, as below: rare work (a store read) whose future would
                        // otherwise be part of every idle reader's.
                        if !Box::pin(self.repair()).await {
                            return self.cut_off();
                        }
                        continue;
                    }
                    Some(live) => match live.recv().await {
                        Ok(frame) => frame,
                        Err(RecvError::Lagged(_)) => {
                            metrics::counter!("agentry_stream_readers_cut_off_total").increment(1);
                            return self.cut_off();
                        }
                        Err(RecvError::Closed) => {
                            self.live = None;
                            self.orphaned = true;
                            continue;
                        }
                    },
                },
            };
            if frame.id < self.next {
                continue;
            }
            if frame.covers_from > self.next {
                // A hole at the seam between the store and the feed: the store fills it.
                self.backlog.push_front(frame);
                repairs += 1;
                if repairs > REPAIR_ATTEMPTS {
                    tracing::warn!(run = %self.run_id, next = self.next, "a hole in a run's stream did not fill");
                    return self.cut_off();
                }
                Box::pin(self.repair_or_wait()).await;
                continue;
            }
            self.next = frame.id + 1;
            self.ended = frame.terminal;
            return StreamItem::Frame(frame);
        }
    }

    fn cut_off(&mut self) -> StreamItem {
        self.ended = true;
        StreamItem::CutOff {
            last_id: self.last_id(),
        }
    }

    /// A repair, or a pause before the next attempt when the store had nothing yet.
    async fn repair_or_wait(&mut self) {
        if !self.repair().await {
            tokio::time::sleep(REPAIR_EVERY).await;
        }
    }

    /// Reads what the store recorded since the last read and puts the frames this reader still
    /// needs first, in id order; whether it found any.
    async fn repair(&mut self) -> bool {
        let events = match self
            .store
            .load::<Run>(&self.run_id.to_string(), self.read_version)
            .await
        {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, run = %self.run_id, "could not read the run's events");
                return false;
            }
        };
        let mut found: Vec<Arc<StreamFrame>> = Vec::new();
        for (version, event) in events {
            self.read_version = version;
            found.extend(
                StreamFrame::of_event(self.run_id, &event)
                    .into_iter()
                    .filter(|frame| frame.id >= self.next)
                    .map(Arc::new),
            );
        }
        if found.is_empty() {
            return false;
        }
        let mut merged: Vec<_> = found.into_iter().chain(self.backlog.drain(..)).collect();
        merged.sort_by_key(|frame| frame.id);
        merged.dedup_by_key(|frame| frame.id);
        self.backlog = merged.into();
        true
    }
}

impl std::fmt::Debug for RunStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStream")
            .field("run_id", &self.run_id)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}
