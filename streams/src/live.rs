//! The live path: frames sent the moment they exist (a chunk as the model streams it, an event
//! as soon as its append commits), to every node, without waiting for the log.
//!
//! It is best effort by design. A frame it loses is found in the store: each node's feed reads
//! the run's events when it sees a hole in the ids, or when a run goes quiet.

use std::sync::Arc;

use futures::FutureExt;
use uuid::Uuid;

use crate::{LiveConnection, Router, StreamFrame};

/// Where a process sends live frames.
#[derive(Clone, Debug)]
pub enum LiveBus {
    /// One node: frames go straight to this node's feeds.
    Local(Router),
    /// Several nodes: core NATS (no persistence) on [`live_subject`], over the process's
    /// [`LiveConnection`], which every node's [`RunStreams`](crate::RunStreams) subscribes on
    /// once.
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

/// Publishes live frames on core NATS.
///
/// Each frame is handed to the connection's task (on the connection's own thread) at once, in
/// the caller's task (no queue and task of our own in between, which would add a wait behind
/// every other ready task of a busy node to each frame). Frames of one caller leave in the
/// order it made them.
#[derive(Clone, Debug)]
pub struct NatsLive {
    connection: LiveConnection,
}

impl NatsLive {
    /// A publisher over `connection`.
    pub fn new(connection: LiveConnection) -> Self {
        Self { connection }
    }

    /// Never waits: when the client's queue to its connection is full (NATS unreachable or
    /// far behind), the frame is dropped, and the readers that miss it find it in the store.
    fn publish(&self, org_id: Uuid, run_id: Uuid, frame: StreamFrame) {
        // `unconstrained`: the first poll must not be refused by the task's cooperative budget,
        // or a frame would be dropped with room in the queue.
        let sent = tokio::task::unconstrained(
            self.connection
                .client
                .publish(live_subject(org_id, run_id), frame.json),
        )
        .now_or_never();
        if !matches!(sent, Some(Ok(()))) {
            metrics::counter!("agentry_stream_live_dropped_total").increment(1);
        }
    }
}
