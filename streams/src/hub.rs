//! A node's run streams: opening one for a reader, and the node's one subscription to the live
//! path.

use std::collections::VecDeque;
use std::sync::Arc;

use domain::run::{MAX_UNRECORDED_IDS, Run, RunEvent};
use eventstore::{CommitObserver, EventStore, StoreError};
use futures::StreamExt;
use thiserror::Error;
use uuid::Uuid;

use crate::feed::{Feed, FeedLimits, Follower};
use crate::live::ALL_LIVE_SUBJECTS;
use crate::{LiveBus, LiveConnection, LiveRunEvents, NatsLive, Router, RunStream, StreamFrame};

/// Why a stream could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// No such run in the organization.
    #[error("run not found")]
    RunNotFound,
    /// The reader resumes after an id the run never had.
    #[error("the run has no event {requested} (its last is {last})")]
    UnknownEventId {
        /// The id asked for.
        requested: u64,
        /// The run's last recorded id.
        last: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every run's stream on this node. Cheap to clone; one per process.
#[derive(Clone)]
pub struct RunStreams {
    store: EventStore,
    router: Router,
    live: LiveBus,
    limits: FeedLimits,
}

impl RunStreams {
    /// A single node's streams: live frames stay in this process.
    pub fn local(store: EventStore, limits: FeedLimits) -> Self {
        let router = Router::default();
        Self {
            store,
            live: LiveBus::Local(router.clone()),
            router,
            limits,
        }
    }

    /// Streams shared by every node on NATS: live frames go out on core NATS over
    /// `connection`, and this node takes every run's live frames through one subscription on
    /// it, handing them to the feeds of the runs it has readers of (from the subscription's
    /// task straight to the readers). Returns once the subscription is made.
    pub async fn nats(
        store: EventStore,
        connection: LiveConnection,
        limits: FeedLimits,
    ) -> Result<Self, async_nats::SubscribeError> {
        let streams = Self::nats_publisher(store, connection.clone(), limits);
        let subscription = connection.client.subscribe(ALL_LIVE_SUBJECTS).await?;
        tokio::spawn(deliver_live(subscription, streams.router.clone()));
        Ok(streams)
    }

    /// Live frames out on NATS, and no reader here: for a process that executes runs and serves
    /// no stream (`agentry worker`), which would otherwise receive every run's frames to drop
    /// them.
    pub fn nats_publisher(store: EventStore, connection: LiveConnection, limits: FeedLimits) -> Self {
        Self {
            store,
            live: LiveBus::Nats(NatsLive::new(connection)),
            router: Router::default(),
            limits,
        }
    }

    /// Where this process sends live frames (the executor's chunks).
    pub fn live(&self) -> LiveBus {
        self.live.clone()
    }

    /// Publishes every committed run event live: give it to the runs' command bus.
    pub fn observer(&self) -> Arc<dyn CommitObserver<Run>> {
        Arc::new(LiveRunEvents::new(self.live.clone()))
    }

    /// The feeds open on this node.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Run `run_id`'s events after `after` (from its first when `None`), then live until its
    /// end. The caller has checked the reader may read the run; the organization is checked
    /// again here so a stream never crosses tenants.
    pub async fn open(&self, org_id: Uuid, run_id: Uuid, after: Option<u64>) -> Result<RunStream, OpenError> {
        if let Some(stream) = self.join_streaming(org_id, run_id, after) {
            return Ok(stream);
        }
        let history = self.store.load::<Run>(&run_id.to_string(), 0).await?;
        match history.first() {
            Some((_, RunEvent::Queued { org_id: owner, .. })) if *owner == org_id => {}
            _ => return Err(OpenError::RunNotFound),
        }
        let read_version = history.last().map_or(0, |(version, _)| *version);
        let frames: Vec<Arc<StreamFrame>> = history
            .iter()
            .flat_map(|(_, event)| StreamFrame::of_event(run_id, event))
            .map(Arc::new)
            .collect();
        let last = frames.last().map_or(0, |frame| frame.id);
        let ended = frames.last().is_some_and(|frame| frame.terminal);
        let after = after.unwrap_or(0);
        // While a model streams, a reader on another node may hold ids not recorded yet.
        let highest_known = if ended { last } else { last + MAX_UNRECORDED_IDS };
        if after > highest_known {
            return Err(OpenError::UnknownEventId {
                requested: after,
                last,
            });
        }
        let mut backlog: VecDeque<_> = frames.iter().filter(|frame| frame.id > after).cloned().collect();
        if ended {
            return Ok(RunStream::new(
                run_id,
                self.store.clone(),
                backlog,
                None,
                after,
                read_version,
            ));
        }
        let joined = {
            let mut feeds = self.router.lock();
            let feed = feeds.entry(run_id).or_insert_with(|| {
                let feed = Arc::new(Feed::new(org_id, &frames, self.limits));
                let follower = Follower::new(run_id, Arc::clone(&feed), self.store.clone(), read_version);
                tokio::spawn(follower.run(self.router.clone()));
                feed
            });
            feed.join()
        };
        backlog.extend(joined.recent);
        Ok(RunStream::new(
            run_id,
            self.store.clone(),
            backlog,
            Some(joined.live),
            after,
            read_version,
        ))
    }

    /// The stream of a reader joining a run this node streams already, when the feed's recent
    /// frames hold everything after `after`: served from memory, without reading the store
    /// (many readers of one run, a wave of reconnections after a deploy).
    fn join_streaming(&self, org_id: Uuid, run_id: Uuid, after: Option<u64>) -> Option<RunStream> {
        let after = after.unwrap_or(0);
        // Under the router's lock, as in `open`: a feed being retired is not joined.
        let joined = self.router.lock().get(&run_id)?.join_after(org_id, after)?;
        // Store reads (repairs, rare for a reader that joins without a hole) start from the
        // run's first event.
        Some(RunStream::new(
            run_id,
            self.store.clone(),
            joined.recent.into(),
            Some(joined.live),
            after,
            0,
        ))
    }
}

/// Takes every run's live frames from the node's subscription and hands each to the feed of
/// its run, when this node has readers of it; until the connection closes.
async fn deliver_live(mut subscription: async_nats::Subscriber, router: Router) {
    while let Some(message) = subscription.next().await {
        let Some(feed) = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|token| Uuid::parse_str(token).ok())
            .and_then(|run_id| router.feed(run_id))
        else {
            continue;
        };
        match StreamFrame::parse(message.payload) {
            Ok(frame) => feed.accept_live(Arc::new(frame)),
            Err(error) => tracing::debug!(%error, subject = %message.subject, "unreadable live frame"),
        }
    }
}

impl std::fmt::Debug for RunStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStreams")
            .field("feeds", &self.router.feed_count())
            .finish_non_exhaustive()
    }
}
