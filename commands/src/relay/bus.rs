use std::sync::Arc;

use thiserror::Error;
use tokio::sync::broadcast;

use super::{LocalBus, NatsBus};
use crate::RecordedEvent;

/// Why a batch was not (yet) published. The relay retries it with the same message ids.
#[derive(Debug, Error)]
pub enum BusError {
    /// NATS refused, timed out or is unreachable.
    #[error("publishing to NATS failed: {0}")]
    Nats(String),
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
    /// Publishes a batch in order, returning once every event is durably accepted.
    pub async fn publish(&self, events: &[RecordedEvent]) -> Result<(), BusError> {
        match self {
            Self::Local(bus) => {
                bus.publish(events);
                Ok(())
            }
            Self::Nats(bus) => bus.publish(events).await,
        }
    }

    /// Live events of this process's in-process bus; `None` with NATS, where subscribers use
    /// JetStream or core NATS subscriptions instead.
    pub fn subscribe_local(&self) -> Option<broadcast::Receiver<Arc<RecordedEvent>>> {
        match self {
            Self::Local(bus) => Some(bus.subscribe()),
            Self::Nats(_) => None,
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
