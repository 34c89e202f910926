use std::sync::Arc;

use futures::stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{BusEvent, EventFilter, EventSubscription, SubscriptionError};
use crate::RecordedEvent;

/// How many events a slow in-process subscriber may fall behind before it sees `Lagged` and
/// must resume from the store.
const CAPACITY: usize = 4_096;

/// The in-process bus for a single node: a broadcast of committed events.
#[derive(Clone, Debug)]
pub struct LocalBus {
    sender: broadcast::Sender<Arc<RecordedEvent>>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl LocalBus {
    /// Sends each event to every current subscriber; having none is not an error.
    pub fn publish(&self, events: &[Arc<RecordedEvent>]) {
        for event in events {
            let _ = self.sender.send(Arc::clone(event));
        }
    }

    /// Events passing `filter`, published from now on, in the form NATS carries them (no
    /// digests); a subscriber more than 4,096 events behind gets [`SubscriptionError::Missed`].
    pub fn subscribe(&self, filter: EventFilter) -> EventSubscription {
        let events = stream::unfold(self.sender.subscribe(), move |mut receiver| async move {
            loop {
                let item = match receiver.recv().await {
                    Ok(event) if filter.matches(&event) => Ok(BusEvent::complete(&event)),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => Err(SubscriptionError::Missed(missed)),
                    Err(RecvError::Closed) => return None,
                };
                return Some((item, receiver));
            }
        });
        EventSubscription::new(Box::pin(events))
    }
}
