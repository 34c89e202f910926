//! How the API hands runs to executors, without knowing where they run.

use uuid::Uuid;

/// Where runs that have work to do are sent: an in-process queue, or JetStream to workers.
pub trait RunDispatch: Send + Sync {
    /// `run_id` has work to do (queued, or its approvals were decided). Sending it twice is
    /// harmless: an executor that finds nothing to do lets go.
    fn dispatch(&self, run_id: Uuid);

    /// `run_id` was cancelled: an executor of it in this process stops now (others notice at
    /// their next record, which the run refuses).
    fn cancelled(&self, run_id: Uuid);
}

/// Dispatches nowhere (processes that take no runs, and tests of the API alone).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDispatch;

impl RunDispatch for NoDispatch {
    fn dispatch(&self, _run_id: Uuid) {}

    fn cancelled(&self, _run_id: Uuid) {}
}
