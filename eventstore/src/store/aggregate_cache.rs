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
/// conflict, and a refusal or a no-op decided on remembered state is checked against the store
/// before it is answered (see `CommandBus`).
pub(crate) struct AggregateCache<A> {
    inner: Mutex<Entries<A>>,
    capacity: usize,
}

struct Entries<A> {
    slots: HashMap<String, Entry<A>>,
    /// A counter, not a clock: bumped on every use, so a smaller tick means less recently used.
    tick: u64,
}

struct Entry<A> {
    slot: Slot<A>,
    last_used: u64,
}

/// Share of the capacity freed at once when the cache is full, so the sort that finds the
/// least recently used slots runs once per many insertions instead of on every one.
const EVICT_FRACTION: usize = 10;

impl<A> AggregateCache<A> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Entries {
                slots: HashMap::new(),
                tick: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    /// The slot of `aggregate_id`, created empty when absent. When the cache is full, the least
    /// recently used slots that no command is using are dropped; a slot in use is never
    /// dropped, so two commands on one aggregate always share a slot.
    pub fn slot(&self, aggregate_id: &str) -> Slot<A> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.slots.get_mut(aggregate_id) {
            entry.last_used = tick;
            return Arc::clone(&entry.slot);
        }
        if inner.slots.len() >= self.capacity {
            inner.evict_least_recently_used(self.capacity.div_ceil(EVICT_FRACTION));
        }
        let slot: Slot<A> = Arc::new(AsyncMutex::new(None));
        let entry = Entry {
            slot: Arc::clone(&slot),
            last_used: tick,
        };
        inner.slots.insert(aggregate_id.to_owned(), entry);
        slot
    }

    /// How many aggregates are held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .slots
            .len()
    }
}

impl<A> Entries<A> {
    /// Drops up to `count` idle slots, least recently used first.
    fn evict_least_recently_used(&mut self, count: usize) {
        let mut idle: Vec<(u64, String)> = self
            .slots
            .iter()
            .filter(|(_, entry)| Arc::strong_count(&entry.slot) == 1)
            .map(|(id, entry)| (entry.last_used, id.clone()))
            .collect();
        idle.sort_unstable();
        for (_, id) in idle.into_iter().take(count) {
            self.slots.remove(&id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::AggregateCache;

    #[test]
    fn a_full_cache_drops_the_least_recently_used_aggregate() {
        let cache = AggregateCache::<u32>::new(3);
        let first = cache.slot("a");
        cache.slot("b");
        cache.slot("c");
        // "a" is used again, so "b" is now the least recently used.
        let again = cache.slot("a");
        assert!(Arc::ptr_eq(&first, &again));
        drop((first, again));

        cache.slot("d");

        assert_eq!(cache.len(), 3);
        let inner = cache.inner.lock().unwrap();
        assert!(inner.slots.contains_key("a"), "recently used kept");
        assert!(!inner.slots.contains_key("b"), "least recently used dropped");
        assert!(inner.slots.contains_key("c") && inner.slots.contains_key("d"));
    }

    #[test]
    fn a_slot_in_use_is_never_dropped() {
        let cache = AggregateCache::<u32>::new(1);
        let held = cache.slot("a");

        cache.slot("b");

        assert!(
            Arc::ptr_eq(&held, &cache.slot("a")),
            "the held slot is still the shared one"
        );
    }
}
