use std::sync::Arc;

use thiserror::Error;

use async_nats::jetstream::context::PublishAckFuture;

use super::{EventFilter, EventSubscription, LocalBus, NatsBus};
use crate::RecordedEvent;

/// Why a batch was not (yet) published. The relay retries it with the same message ids.
#[derive(Debug, Error)]
pub enum BusError {
    /// NATS refused, timed out or is unreachable.
    #[error("publishing to NATS failed: {0}")]
    Nats(String),
    /// The publisher lost its lease in the middle of the batch and sent nothing more.
    #[error("the relay lease was lost in the middle of a batch")]
    LeaseLost,
}

/// Who sends a batch: the relay's lease epoch (carried by every NATS message as the
/// `Agentry-Relay-Epoch` header, so a failover can be traced on the wire) and the lease check
/// made before *every* message, so a leader frozen in the middle of a batch sends nothing more
/// once it wakes.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    /// The lease epoch (0 for the in-process bus).
    pub epoch: i64,
    /// Whether this process still holds the lease.
    pub still_leading: &'a (dyn Fn() -> bool + Sync),
}

/// Where committed events go: NATS JetStream when `NATS_URL` is set, or an in-process
/// broadcast that serves a single node.
#[derive(Clone, Debug)]
pub enum EventBus {
    /// One node, no broker.
    Local(LocalBus),
    /// JetStream between nodes.
    Nats(Box<NatsBus>),
}

impl EventBus {
    /// Sends a batch in order and returns its pending acknowledgements, so the caller can do
    /// other work (read the next batch) while the broker stores it.
    pub async fn publish(
        &self,
        events: &[Arc<RecordedEvent>],
        publisher: Publisher<'_>,
    ) -> Result<PendingAcks, BusError> {
        match self {
            Self::Local(bus) => {
                bus.publish(events);
                Ok(PendingAcks::default())
            }
            Self::Nats(bus) => bus.publish(events, publisher).await,
        }
    }

    /// Live committed events passing `filter`, from now on, the same way on either bus: what
    /// streaming to clients builds on. See [`EventSubscription`] for what a consumer must
    /// allow for (duplicates and cut events on NATS, a missed count in process).
    pub async fn subscribe(&self, filter: EventFilter) -> Result<EventSubscription, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.subscribe(filter)),
            Self::Nats(bus) => bus.subscribe(filter).await,
        }
    }

    /// Whether the bus can carry events now (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        match self {
            Self::Local(_) => true,
            Self::Nats(bus) => bus.is_connected(),
        }
    }

    /// Whether several processes share this bus, so only one relay should publish.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Nats(_))
    }
}

impl From<NatsBus> for EventBus {
    fn from(bus: NatsBus) -> Self {
        Self::Nats(Box::new(bus))
    }
}

impl From<LocalBus> for EventBus {
    fn from(bus: LocalBus) -> Self {
        Self::Local(bus)
    }
}

/// The acknowledgements of a published batch, not yet received.
#[derive(Default)]
pub struct PendingAcks {
    acks: Vec<PublishAckFuture>,
}

impl PendingAcks {
    pub(crate) fn new(acks: Vec<PublishAckFuture>) -> Self {
        Self { acks }
    }

    /// Resolves once every event of the batch is durably stored; an error means some may not be
    /// (or may be: an ack timeout does not say), so the batch must be sent again with its ids.
    pub async fn confirmed(self) -> Result<(), BusError> {
        for ack in self.acks {
            ack.await.map_err(|error| BusError::Nats(error.to_string()))?;
        }
        Ok(())
    }
}
