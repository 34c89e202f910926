use std::sync::Arc;

use tokio::sync::broadcast;

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
    pub fn publish(&self, events: &[RecordedEvent]) {
        for event in events {
            let _ = self.sender.send(Arc::new(event.clone()));
        }
    }

    /// A new subscriber, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.sender.subscribe()
    }
}
