//! Runs handed to executors through JetStream, so several `agentry worker` processes share
//! them and a run is executed by one at a time.
//!
//! A dispatch is a message on a work-queue stream. A worker takes one message per run it
//! executes and keeps it unacknowledged, telling JetStream it is still at work every few
//! seconds; it acknowledges when the run ends or waits for approval. A worker that dies (or
//! freezes) stops doing that, JetStream hands the message to another worker after
//! [`ACK_WAIT`], and that one takes the run over (a redelivery proves the first stopped
//! acknowledging, so it may; a first delivery never steals a run another executor holds). A
//! frozen worker that wakes is refused at its next record, and its watcher drops its model or
//! tool call within a second; it then leaves its stale delivery unacknowledged (an ack would
//! count as the new executor's) and hands nothing back (a nak would have the run taken over
//! again, from the executor that holds it).
//!
//! A dispatch whose publish failed (NATS unreachable for a moment) is not lost: every worker
//! sweeps the log for runs still waiting for an executor and publishes their dispatch again
//! ([`super::redispatch`]). Each dispatch carries a stable message id (the run and its version
//! when it began to wait), so JetStream keeps one copy of a dispatch published by the API and
//! by several sweeps within its duplicate window; a copy past that window finds the run taken
//! (a first delivery never takes a run another executor holds) or is skipped by the worker
//! executing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind, stream};
use commands::runs::RunDispatch;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Executor;
use super::run_loop::Outcome;

/// The work-queue stream of dispatched runs: `AGENTRY_RUNS_<deployment>`.
pub const RUNS_STREAM: &str = "AGENTRY_RUNS";
/// The durable consumer every worker pulls from.
const CONSUMER: &str = "executors";
/// How long JetStream waits for a worker's sign of life before handing the run to another.
const ACK_WAIT: Duration = Duration::from_secs(6);
/// How often a worker signs that it is still executing a run.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long a run whose execution failed (the store unreachable) waits before redelivery.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long JetStream remembers a dispatch's message id and drops another copy of it.
pub(super) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

type Registry = Arc<Mutex<HashMap<Uuid, CancellationToken>>>;

/// Names on NATS of one deployment's runs queue. Deployments (databases) sharing a NATS server
/// must never take each other's runs: a worker would find no such run in its database and
/// drop the work item, so every name carries the deployment's id.
#[derive(Clone, Debug)]
pub struct QueueNames {
    stream: String,
    dispatch: String,
    cancel: String,
}

impl QueueNames {
    /// The names for `deployment` (letters, digits, `-` and `_` only).
    pub fn for_deployment(deployment: &str) -> Self {
        let token: String = deployment
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        Self {
            stream: format!("{RUNS_STREAM}_{token}"),
            dispatch: format!("agentry.runs.{token}.dispatch"),
            // Core NATS: a worker that misses one notices through its watcher within a second.
            cancel: format!("agentry.runs.{token}.cancelled"),
        }
    }
}

/// The API's side: publishes dispatches and cancels.
#[derive(Clone)]
pub struct NatsDispatcher {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    names: QueueNames,
}

impl NatsDispatcher {
    /// Over an existing connection.
    pub fn new(client: async_nats::Client, jetstream: jetstream::Context, names: QueueNames) -> Self {
        Self {
            client,
            jetstream,
            names,
        }
    }
}

impl RunDispatch for NatsDispatcher {
    fn dispatch(&self, run_id: Uuid, version: u64) {
        let (jetstream, names) = (self.jetstream.clone(), self.names.clone());
        tokio::spawn(async move {
            if let Err(error) = publish_dispatch(&jetstream, &names, run_id, Some(version)).await {
                // The run stays queued in the store; the workers' sweep dispatches it again.
                tracing::warn!(%error, run = %run_id, "run not dispatched; the sweep will dispatch it again");
            }
        });
    }

    fn wake(&self, run_id: Uuid) {
        let (jetstream, names) = (self.jetstream.clone(), self.names.clone());
        tokio::spawn(async move {
            if let Err(error) = publish_dispatch(&jetstream, &names, run_id, None).await {
                // The run still waits for credits in the store; the next sweep wakes it.
                tracing::warn!(%error, run = %run_id, "run not woken; the next sweep will");
            }
        });
    }

    fn cancelled(&self, run_id: Uuid) {
        let (client, subject) = (self.client.clone(), self.names.cancel.clone());
        tokio::spawn(async move {
            let _ = client.publish(subject, run_id.to_string().into()).await;
        });
    }
}

/// Publishes a dispatch of `run_id` and waits for JetStream to store it; answers whether
/// JetStream dropped it as a copy of one it holds. With `version` (the run's version when it
/// began to wait), the message id names the dispatch, so another copy within
/// [`DUPLICATE_WINDOW`] is dropped; without, every copy is kept.
pub(super) async fn publish_dispatch(
    jetstream: &jetstream::Context,
    names: &QueueNames,
    run_id: Uuid,
    version: Option<u64>,
) -> Result<bool, String> {
    ensure_stream(jetstream, names).await?;
    let mut message = PublishMessage::build().payload(run_id.to_string().into());
    if let Some(version) = version {
        message = message.message_id(format!("{run_id}.{version}"));
    }
    let stored = jetstream
        .send_publish(names.dispatch.clone(), message)
        .await
        .map_err(|error| error.to_string())?
        .await
        .map_err(|error| error.to_string())?;
    Ok(stored.duplicate)
}

async fn ensure_stream(jetstream: &jetstream::Context, names: &QueueNames) -> Result<stream::Stream, String> {
    jetstream
        .get_or_create_stream(stream::Config {
            name: names.stream.clone(),
            subjects: vec![names.dispatch.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|error| error.to_string())
}

/// The workers' side: pulls dispatched runs and executes them.
pub struct NatsRunQueue {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    names: QueueNames,
}

impl NatsRunQueue {
    /// Over an existing connection.
    pub fn new(client: async_nats::Client, jetstream: jetstream::Context, names: QueueNames) -> Self {
        Self {
            client,
            jetstream,
            names,
        }
    }

    /// Executes dispatched runs, at most `max_concurrent` at once, until `shutdown`; first
    /// dispatches every unfinished run again (harmless for one another worker holds: a first
    /// delivery never takes a run over), so a dispatch lost with a crashed node is not lost,
    /// and from then on sweeps for runs whose dispatch was lost since.
    pub async fn run(self, executor: Arc<Executor>, max_concurrent: usize, shutdown: CancellationToken) {
        let consumer = loop {
            match self.consumer().await {
                Ok(consumer) => break consumer,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the runs queue on NATS; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        // Taken before the unfinished runs are read, so the sweep sees every run queued after.
        let horizon = executor.service().sweep_horizon().await;
        match executor.service().unfinished_runs().await {
            Ok(runs) => {
                for run_id in runs {
                    if let Err(error) = publish_dispatch(&self.jetstream, &self.names, run_id, None).await {
                        tracing::warn!(%error, run = %run_id, "unfinished run not dispatched");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for unfinished runs"),
        }
        tokio::spawn(super::redispatch::sweep(
            Arc::clone(&executor),
            self.jetstream.clone(),
            self.names.clone(),
            horizon.ok(),
            shutdown.clone(),
        ));
        let executing = Registry::default();
        tokio::spawn(listen_for_cancels(
            self.client.clone(),
            self.names.cancel.clone(),
            Arc::clone(&executing),
            shutdown.clone(),
        ));
        let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(%error, "cannot pull from the runs queue");
                return;
            }
        };
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                message = messages.next() => match message {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "runs queue");
                        continue;
                    }
                    None => break,
                },
            };
            let Some(run_id) = std::str::from_utf8(&message.payload)
                .ok()
                .and_then(|text| Uuid::parse_str(text).ok())
            else {
                tracing::warn!("a runs-queue message that names no run; dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            };
            let takeover = message.info().map(|info| info.delivered > 1).unwrap_or(false);
            let cancel = shutdown.child_token();
            let copy = {
                let mut executing = executing.lock().unwrap_or_else(PoisonError::into_inner);
                let copy = executing.contains_key(&run_id);
                if !copy {
                    executing.insert(run_id, cancel.clone());
                }
                copy
            };
            if copy {
                // A run this worker is executing: executing it again would resume it under
                // this same executor, which the run cannot tell from the execution under way,
                // and both would take its steps.
                drop(permit);
                if !takeover {
                    // Another copy of its dispatch (a sweep's, past the duplicate window): its
                    // own message, so acknowledging it touches nothing else.
                    let _ = message.ack().await;
                }
                // A redelivery (this worker was frozen past the acknowledgement wait, and the
                // message came back to it): left alone, as the execution under way keeps the
                // message alive and acknowledges it when it ends (JetStream acknowledges by
                // message, not by delivery).
                continue;
            }
            let (executor, executing, shutdown) =
                (Arc::clone(&executor), Arc::clone(&executing), shutdown.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let execution = executor.execute(run_id, cancel.clone(), takeover);
                tokio::pin!(execution);
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut execution => break outcome,
                        () = tokio::time::sleep(PROGRESS_EVERY) => {
                            let _ = message.ack_with(AckKind::Progress).await;
                        }
                    }
                };
                executing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&run_id);
                // Only a shutdown hands the run back: `cancel` also fires when the run was
                // cancelled or taken over (this worker's record refused, its watcher), and a
                // redelivery then would take the run from the executor that holds it now.
                let shutting_down = shutdown.is_cancelled() && outcome.is_ok();
                let acknowledged = match outcome {
                    // Taken over through a redelivery of this message: that delivery is the
                    // new executor's, and JetStream acknowledges by message, so an ack (or a
                    // nak) of this stale delivery would be taken as theirs and drop the run
                    // from the queue while it executes. Leave it to them.
                    Ok(Outcome::TakenOver) => Ok(()),
                    // Stopped by shutdown mid-run: hand it to another worker at once.
                    Ok(_) if shutting_down => message.ack_with(AckKind::Nak(None)).await,
                    Ok(_) => message.ack().await,
                    Err(error) => {
                        tracing::warn!(%error, run = %run_id, "run execution interrupted; it will be tried again");
                        message.ack_with(AckKind::Nak(Some(RETRY_AFTER))).await
                    }
                };
                if let Err(error) = acknowledged {
                    tracing::warn!(%error, run = %run_id, "runs queue acknowledgement failed");
                }
            });
        }
    }

    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
        let stream = ensure_stream(&self.jetstream, &self.names).await?;
        stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| error.to_string())
    }
}

async fn listen_for_cancels(
    client: async_nats::Client,
    subject: String,
    executing: Registry,
    shutdown: CancellationToken,
) {
    let Ok(mut cancels) = client.subscribe(subject).await else {
        tracing::warn!("cannot listen for run cancels; executions notice them within a second");
        return;
    };
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = cancels.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let run_id = std::str::from_utf8(&message.payload)
            .ok()
            .and_then(|text| Uuid::parse_str(text).ok());
        if let Some(run_id) = run_id
            && let Some(cancel) = executing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&run_id)
        {
            cancel.cancel();
        }
    }
}
