//! The live path: frames sent the moment they exist (a chunk as the model streams it, an event
//! as soon as its append commits), to every node, without waiting for the log.
//!
//! It is best effort by design. A frame it loses is found in the store: each node's feed reads
//! the run's events when it sees a hole in the ids, or when a run goes quiet.

use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{Router, StreamFrame};

/// Frames waiting for the NATS publisher task; past this the newest are dropped (and found in
/// the store by the readers that miss them).
const PUBLISH_QUEUE: usize = 65_536;

/// Where a process sends live frames.
#[derive(Clone, Debug)]
pub enum LiveBus {
    /// One node: frames go straight to this node's feeds.
    Local(Router),
    /// Several nodes: core NATS (no persistence) on [`live_subject`], which every node's
    /// [`RunStreams`](crate::RunStreams) subscribes to once.
    Nats(NatsLive),
}

impl LiveBus {
    /// Sends `frame` of run `run_id` (of organization `org_id`) to every node's readers of the
    /// run. Never waits: called while a model streams and right after commits.
    pub fn publish(&self, org_id: Uuid, run_id: Uuid, frame: StreamFrame) {
        match self {
            Self::Local(router) => router.deliver(run_id, Arc::new(frame)),
            Self::Nats(nats) => nats.publish(org_id, run_id, frame),
        }
    }
}

/// `agentry.<org_id>.live.<run_id>`: a run's frames as they happen. Not part of the
/// JetStream stream (`agentry.*.events.>`), so nothing of it is stored twice.
pub fn live_subject(org_id: Uuid, run_id: Uuid) -> String {
    format!("agentry.{org_id}.live.{run_id}")
}

/// Every run's live subject, for a node's one subscription.
pub(crate) const ALL_LIVE_SUBJECTS: &str = "agentry.*.live.*";

/// Publishes live frames on NATS from one task, so they leave in the order they were made.
#[derive(Clone, Debug)]
pub struct NatsLive {
    queue: mpsc::Sender<(String, bytes::Bytes)>,
}

impl NatsLive {
    /// A publisher over `client`; its task ends when every clone is dropped.
    pub fn new(client: async_nats::Client) -> Self {
        let (queue, mut frames) = mpsc::channel::<(String, bytes::Bytes)>(PUBLISH_QUEUE);
        tokio::spawn(async move {
            while let Some((subject, json)) = frames.recv().await {
                if let Err(error) = client.publish(subject, json).await {
                    metrics::counter!("agentry_stream_live_dropped_total").increment(1);
                    tracing::debug!(%error, "live frame not published");
                }
            }
        });
        Self { queue }
    }

    fn publish(&self, org_id: Uuid, run_id: Uuid, frame: StreamFrame) {
        if self
            .queue
            .try_send((live_subject(org_id, run_id), frame.json))
            .is_err()
        {
            metrics::counter!("agentry_stream_live_dropped_total").increment(1);
        }
    }
}
