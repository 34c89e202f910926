//! The standings this process read last, by credentials: what a write route decides with
//! instead of reading the standing again (see [`super::GuardedCaller`]).
//!
//! Never trusted alone: a write decided with a remembered standing commits only if the
//! standing is still that one in the append's own statement. So a stale entry costs a retry,
//! never a write for a caller who no longer stands; there is no expiry to get right.

use std::collections::HashMap;
use std::sync::Mutex;

use projections::identity::queries::{Standing, StandingQuery};

/// Entries kept at most: past it the memory starts over (each entry is under 200 bytes, and
/// forgetting costs one standing read per caller).
const MAX_REMEMBERED: usize = 100_000;

/// The last standing read for each set of credentials (user, organization, session,
/// impersonation).
#[derive(Default)]
pub(super) struct RememberedStandings {
    standings: Mutex<HashMap<StandingQuery, Standing>>,
}

impl RememberedStandings {
    /// The standing last read for `query`, if this process remembers one.
    pub fn get(&self, query: &StandingQuery) -> Option<Standing> {
        self.lock().get(query).cloned()
    }

    /// Keeps `standing`, just read for `query`.
    pub fn keep(&self, query: StandingQuery, standing: &Standing) {
        let mut standings = self.lock();
        if standings.len() >= MAX_REMEMBERED && !standings.contains_key(&query) {
            standings.clear();
        }
        standings.insert(query, standing.clone());
    }

    /// Forgets `query`'s standing: it no longer reads as remembered.
    pub fn forget(&self, query: &StandingQuery) {
        self.lock().remove(query);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StandingQuery, Standing>> {
        // A panic while holding it left at worst an entry missing or stale: both are safe.
        self.standings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
