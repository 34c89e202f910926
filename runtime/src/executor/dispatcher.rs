//! Runs handed to executors in this process: a queue, a bound on concurrent runs, and the
//! cancel switch of each run being executed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use commands::runs::RunDispatch;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Executor;
use super::run_loop::Outcome;

/// How long a run whose execution failed (the store unreachable) waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A run being executed here: its cancel switch, and whether it was dispatched again meanwhile
/// (then it is executed once more when this execution ends, so no dispatch is lost).
struct Executing {
    cancel: CancellationToken,
    again: bool,
}

type Registry = Arc<Mutex<HashMap<Uuid, Executing>>>;

/// The API's side of the queue: what [`RunDispatch`] calls.
#[derive(Clone)]
pub struct LocalDispatcher {
    sender: mpsc::UnboundedSender<(Uuid, bool)>,
    executing: Registry,
}

impl RunDispatch for LocalDispatcher {
    fn dispatch(&self, run_id: Uuid, _version: u64) {
        // A send fails only once the queue stopped (shutdown): the run is resumed at the next
        // start, from its record.
        let _ = self.sender.send((run_id, false));
    }

    fn cancelled(&self, run_id: Uuid) {
        let executing = self.executing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = executing.get(&run_id) {
            entry.cancel.cancel();
        }
    }
}

/// The executors' side of the queue.
pub struct RunQueue {
    receiver: mpsc::UnboundedReceiver<(Uuid, bool)>,
    sender: mpsc::UnboundedSender<(Uuid, bool)>,
    executing: Registry,
}

impl RunQueue {
    /// A queue and the dispatcher that feeds it.
    pub fn new() -> (LocalDispatcher, Self) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let executing = Registry::default();
        let dispatcher = LocalDispatcher {
            sender: sender.clone(),
            executing: Arc::clone(&executing),
        };
        (
            dispatcher,
            Self {
                receiver,
                sender,
                executing,
            },
        )
    }

    /// Executes dispatched runs, at most `max_concurrent` at once, until `shutdown`; first
    /// dispatches every run left unfinished by an earlier process (taking them over: with the
    /// in-process bus, this process is the only executor, so their executor is gone).
    pub async fn run(mut self, executor: Arc<Executor>, max_concurrent: usize, shutdown: CancellationToken) {
        match executor.service().unfinished_runs().await {
            Ok(runs) => {
                if !runs.is_empty() {
                    tracing::info!(runs = runs.len(), "resuming unfinished runs");
                }
                for run_id in runs {
                    let _ = self.sender.send((run_id, true));
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for unfinished runs"),
        }
        let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let mut tasks = JoinSet::new();
        loop {
            let (run_id, takeover) = tokio::select! {
                () = shutdown.cancelled() => break,
                received = self.receiver.recv() => match received {
                    Some(received) => received,
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            let cancel = {
                let mut executing = self.executing.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(entry) = executing.get_mut(&run_id) {
                    entry.again = true;
                    continue;
                }
                let cancel = shutdown.child_token();
                executing.insert(
                    run_id,
                    Executing {
                        cancel: cancel.clone(),
                        again: false,
                    },
                );
                cancel
            };
            let (executor, permits, executing, sender) = (
                Arc::clone(&executor),
                Arc::clone(&permits),
                Arc::clone(&self.executing),
                self.sender.clone(),
            );
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let outcome = executor.execute(run_id, cancel.clone(), takeover).await;
                let again = executing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&run_id)
                    .is_some_and(|entry| entry.again);
                match outcome {
                    Ok(
                        Outcome::Ended
                        | Outcome::AwaitingApproval
                        | Outcome::AwaitingCredits
                        | Outcome::LetGo
                        | Outcome::TakenOver,
                    ) => {
                        if again && !cancel.is_cancelled() {
                            let _ = sender.send((run_id, false));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, run = %run_id, "run execution interrupted; trying again");
                        tokio::time::sleep(RETRY_AFTER).await;
                        let _ = sender.send((run_id, takeover));
                    }
                }
            });
        }
        for entry in self
            .executing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            entry.cancel.cancel();
        }
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while tasks.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!("run executions did not stop within 10 s");
        }
    }
}
