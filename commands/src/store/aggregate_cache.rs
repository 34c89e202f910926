use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Mutex as AsyncMutex;

/// An aggregate's state as this process last knew it, and the version that state reflects.
#[derive(Clone, Debug, Default)]
pub(crate) struct Loaded<A> {
    pub state: A,
    pub version: usize,
}

/// One slot per aggregate. The async mutex serialises this process's commands on one
/// aggregate, so they never conflict with each other; `None` means "not loaded yet" (or
/// dropped after an error), so the next command loads from the store.
pub(crate) type Slot<A> = Arc<AsyncMutex<Option<Loaded<A>>>>;

/// Keeps recently used aggregates in memory so a command costs one round trip (the append)
/// instead of two (load, append). Staleness is safe: another node's append makes ours
/// conflict, and the bus then reloads only the missing tail.
pub(crate) struct AggregateCache<A> {
    slots: Mutex<HashMap<String, Slot<A>>>,
    capacity: usize,
}

impl<A> AggregateCache<A> {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The slot of `aggregate_id`, created empty when absent. When the cache is full, slots
    /// no command is using are dropped first; a slot in use is never dropped, so two
    /// commands on one aggregate always share a slot.
    pub fn slot(&self, aggregate_id: &str) -> Slot<A> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(aggregate_id) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.capacity {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot: Slot<A> = Arc::new(AsyncMutex::new(None));
        slots.insert(aggregate_id.to_owned(), Arc::clone(&slot));
        slot
    }
}
