//! The sweep that publishes again the dispatch of runs still waiting for an executor, so a
//! dispatch lost on its way to JetStream (NATS unreachable for a moment, a node dying between
//! its commit and its publish) delays its run by seconds instead of leaving it queued until
//! some worker restarts.
//!
//! Every worker sweeps; concurrent sweeps are harmless. A dispatch's message id is the run and
//! its version when it began to wait, the same id the API published it under, so JetStream
//! keeps one copy per [`DUPLICATE_WINDOW`](super::nats_queue::DUPLICATE_WINDOW) however many
//! sweeps publish it; a worker publishes a given dispatch again only once that window has
//! passed, so a long backlog costs a publish per run every two minutes, not every sweep. A copy
//! that does get through finds the run taken (a first delivery never takes a run another
//! executor holds) or is skipped by the worker executing it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use commands::runs::{SweepHorizon, WaitingRun};
use tokio_util::sync::CancellationToken;

use super::Executor;
use super::nats_queue::{DUPLICATE_WINDOW, QueueNames, publish_dispatch};

/// How often a worker sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How long a run waits before its dispatch counts as lost: longer than a publish takes when
/// NATS answers, so the sweep rarely publishes a dispatch the API is still publishing (and a
/// copy it does publish is dropped as a duplicate).
pub const DISPATCH_GRACE: Duration = Duration::from_secs(3);

/// Sweeps every [`SWEEP_EVERY`] until `shutdown`, from `horizon` (or from the first sweep's
/// moment when the caller could not read it).
pub(super) async fn sweep(
    executor: Arc<Executor>,
    jetstream: jetstream::Context,
    names: QueueNames,
    mut horizon: Option<SweepHorizon>,
    shutdown: CancellationToken,
) {
    // When each dispatch was last published by this sweep, while its run still waits.
    let mut published: HashMap<WaitingRun, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let service = executor.service();
        let since = match horizon {
            Some(since) => since,
            None => match service.sweep_horizon().await {
                Ok(now) => {
                    horizon = Some(now);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "dispatch sweep: cannot read the log");
                    continue;
                }
            },
        };
        let (waiting, next) = match service.waiting_runs(since, DISPATCH_GRACE).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "dispatch sweep: cannot read the log");
                continue;
            }
        };
        horizon = Some(next);
        let still_waiting: HashSet<WaitingRun> = waiting.iter().copied().collect();
        published.retain(|dispatch, _| still_waiting.contains(dispatch));
        for dispatch in waiting {
            if published
                .get(&dispatch)
                .is_some_and(|at| at.elapsed() < DUPLICATE_WINDOW)
            {
                continue;
            }
            let WaitingRun { run_id, version } = dispatch;
            match publish_dispatch(&jetstream, &names, run_id, Some(version)).await {
                Ok(duplicate) => {
                    if !duplicate {
                        tracing::info!(run = %run_id, version, "dispatched again a run whose dispatch was lost");
                    }
                    published.insert(dispatch, Instant::now());
                }
                Err(error) => {
                    tracing::warn!(%error, run = %run_id, "dispatch sweep: run not dispatched; trying again");
                    // NATS is unreachable: the next sweep tries the rest.
                    break;
                }
            }
        }
    }
}
