//! How the API hands runs to executors, without knowing where they run.

use uuid::Uuid;

/// Where runs that have work to do are sent: an in-process queue, or JetStream to workers.
pub trait RunDispatch: Send + Sync {
    /// `run_id` has work to do (queued, or its approvals were decided). Sending it twice is
    /// harmless: an executor that finds nothing to do lets go.
    ///
    /// `version` is the run's version (its number of events) when it became queued. With the
    /// run id it names this dispatch, so a queue that drops repeated messages (JetStream's
    /// duplicate window) keeps one copy when the dispatch is sent again by a sweep.
    fn dispatch(&self, run_id: Uuid, version: u64);

    /// `run_id`, waiting for credits, may go on now that credits arrived. Unlike a dispatch it
    /// names no version: the run records nothing when an executor finds the credits gone
    /// again, so a later wake of the same run must not be dropped as a copy of this one.
    fn wake(&self, run_id: Uuid) {
        self.dispatch(run_id, 0);
    }

    /// `run_id` was cancelled: an executor of it in this process stops now (others notice at
    /// their next record, which the run refuses).
    fn cancelled(&self, run_id: Uuid);
}

/// Dispatches nowhere (processes that take no runs, and tests of the API alone).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDispatch;

impl RunDispatch for NoDispatch {
    fn dispatch(&self, _run_id: Uuid, _version: u64) {}

    fn cancelled(&self, _run_id: Uuid) {}
}
