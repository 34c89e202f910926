//! The runs side of a process: the conversations and runs service the API uses, and the
//! executor with its in-process queue.

use std::sync::Arc;

use commands::billing::BillingService;
use commands::runs::RunDispatch;
use commands::runs::RunService;
use commands::tools::ToolService;
use eventstore::EventBus;
use runtime::executor::HttpToolbox;
use runtime::executor::{
    Executor, ExecutorSettings, NatsDispatcher, NatsRunQueue, PriceTable, QueueNames, RunQueue,
};
use runtime::llm::{Models, OpenAiModel, OpenAiSettings};
use runtime::tools::{ToolInvoker, ToolInvokerSettings};
use streams::{LiveConnection, RunStreams};

use crate::platform::{Platform, PlatformError};
use crate::settings::Settings;

/// The runs side as the API uses it.
pub struct Runs {
    /// Conversations and runs.
    pub service: Arc<RunService>,
    /// Runs' live streams on this node.
    pub streams: RunStreams,
}

/// Builds the runs service and its streams, and starts executing runs in this process: with the in-process bus,
/// the runs its API dispatches and every run an earlier process left unfinished; with NATS,
/// runs from the JetStream work queue every node's API feeds, shared with the other workers.
/// `serves_streams`: whether this process has stream readers (`serve`) or only executes runs
/// (`worker`, which then takes no live frames from NATS).
pub async fn start_runs(
    platform: &mut Platform,
    settings: &Settings,
    tools: Arc<ToolService>,
    billing: Arc<BillingService>,
    serves_streams: bool,
) -> Result<Runs, PlatformError> {
    let prices = match &settings.runs.llm_prices {
        Some(overrides) => PriceTable::with_overrides(overrides)
            .map_err(|error| PlatformError::Config(format!("invalid AGENTRY_LLM_PRICES: {error}")))?,
        None => PriceTable::default(),
    };
    enum Queue {
        Local(RunQueue),
        Nats(Box<NatsRunQueue>),
    }
    let (dispatcher, queue): (Arc<dyn RunDispatch>, Queue) = match &platform.bus {
        EventBus::Nats(bus) => {
            let (client, jetstream) = (bus.client().clone(), bus.jetstream().clone());
            let names = QueueNames::for_deployment(&deployment_id(&platform.pool).await?);
            (
                Arc::new(NatsDispatcher::new(
                    client.clone(),
                    jetstream.clone(),
                    names.clone(),
                )),
                Queue::Nats(Box::new(NatsRunQueue::new(client, jetstream, names))),
            )
        }
        EventBus::Local(_) => {
            let (dispatcher, queue) = RunQueue::new();
            (Arc::new(dispatcher), Queue::Local(queue))
        }
    };
    let streams = run_streams(platform, settings, serves_streams).await?;
    let mut service = RunService::new(&platform.store, dispatcher, platform.progress())
        .with_run_observer(streams.observer());
    if settings.billing.billing_enabled {
        service = service.with_billing(Arc::clone(&billing));
    } else {
        tracing::info!("AGENTRY_BILLING_ENABLED=false: runs are not billed");
    }
    let service = Arc::new(service);
    let executor = Arc::new(
        Executor::new(
            Arc::clone(&service),
            models(settings)?,
            Arc::new(HttpToolbox::new(tools, invoker(settings)?)),
            ExecutorSettings {
                prices,
                ..ExecutorSettings::default()
            },
        )
        .with_live(streams.live()),
    );
    platform.spawn(expire_approvals(Arc::clone(&service), platform.shutdown.clone()));
    if settings.billing.billing_enabled {
        platform.spawn(wake_paused_runs(
            Arc::clone(&service),
            billing.credits_granted(),
            platform.shutdown.clone(),
        ));
    }
    // The id runs record on `run.started` / `run.resumed`: this line ties it to the process.
    tracing::info!(executor = %executor.id(), "executing runs");
    let (limit, shutdown) = (settings.runs.max_concurrent_runs, platform.shutdown.clone());
    match queue {
        Queue::Local(queue) => platform.spawn(queue.run(executor, limit, shutdown)),
        Queue::Nats(queue) => platform.spawn(queue.run(executor, limit, shutdown)),
    }
    Ok(Runs { service, streams })
}

/// The process's run streams: over NATS when the bus is (every node's readers get every run's
/// frames; a process that serves no stream only publishes), else in process.
async fn run_streams(
    platform: &Platform,
    settings: &Settings,
    serves_streams: bool,
) -> Result<RunStreams, PlatformError> {
    let (store, feed) = (platform.store.clone(), settings.runs.stream_feed);
    // The bus is NATS exactly when a NATS URL is set (`Platform::connect`).
    let Some(url) = &settings.bus.nats_url else {
        return Ok(RunStreams::local(store, feed));
    };
    let connection = LiveConnection::connect(url)
        .await
        .map_err(|error| PlatformError::Config(format!("NATS: cannot connect the live path: {error}")))?;
    if !serves_streams {
        return Ok(RunStreams::nats_publisher(store, connection, feed));
    }
    RunStreams::nats(store, connection, feed)
        .await
        .map_err(|error| PlatformError::Config(format!("NATS: cannot subscribe to live run events: {error}")))
}

/// This deployment's id: generated once, kept in the database every node shares, so nodes of
/// one deployment share a runs queue on NATS and other deployments' queues stay apart.
async fn deployment_id(pool: &sqlx::PgPool) -> Result<String, PlatformError> {
    let candidate = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query("INSERT INTO platform_secrets (name, value) VALUES ('deployment_id', $1) ON CONFLICT (name) DO NOTHING")
        .bind(&candidate)
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM platform_secrets WHERE name = 'deployment_id'")
            .fetch_one(pool)
            .await?,
    )
}

/// `echo`, and the OpenAI-compatible endpoint when one is configured.
fn models(settings: &Settings) -> Result<Models, PlatformError> {
    let runs = &settings.runs;
    let Some(base_url) = &runs.llm_base_url else {
        return Ok(Models::echo_only());
    };
    let api_key = runs
        .llm_api_key
        .clone()
        .unwrap_or_else(|| secrecy::SecretString::from(String::new()));
    let mut provider = OpenAiSettings::new(base_url.clone(), api_key);
    provider.call_timeout = std::time::Duration::from_secs(runs.llm_timeout_seconds.max(1));
    provider.idle_timeout = std::time::Duration::from_secs(runs.llm_idle_timeout_seconds.max(1));
    provider.max_retries = runs.llm_max_retries;
    let model = OpenAiModel::new(provider).map_err(|error| {
        PlatformError::Config(format!("AGENTRY_LLM_BASE_URL / AGENTRY_LLM_API_KEY: {error}"))
    })?;
    tracing::info!(base_url = %base_url, "models: echo and the configured OpenAI-compatible endpoint");
    Ok(Models::with_provider(Arc::new(model), runs.llm_models.clone()))
}

/// The HTTP client tools are called with.
fn invoker(settings: &Settings) -> Result<ToolInvoker, PlatformError> {
    if settings.runs.tools_allow_private_networks {
        tracing::warn!(
            "AGENTRY_TOOLS_ALLOW_PRIVATE_NETWORKS=true: tools may call private and loopback addresses"
        );
    }
    ToolInvoker::new(ToolInvokerSettings {
        allow_private_networks: settings.runs.tools_allow_private_networks,
        max_response_bytes: settings.runs.tools_max_response_bytes,
    })
    .map_err(|error| PlatformError::Config(format!("tool calls: {error}")))
}

/// The model names agents may use, as the API checks them.
pub fn model_catalog(settings: &Settings) -> commands::agents::ModelCatalog {
    match &settings.runs.llm_base_url {
        Some(_) => commands::agents::ModelCatalog::with_provider(settings.runs.llm_models.clone()),
        None => commands::agents::ModelCatalog::echo_only(),
    }
}

/// How often a node looks for approvals past their agent's timeout.
const APPROVAL_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Denies expired approvals (reason `expired`) until shutdown; every node sweeps, and a call
/// another node denied first is simply skipped.
async fn expire_approvals(service: Arc<RunService>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(APPROVAL_SWEEP_EVERY) => {}
        }
        match service.expire_approvals().await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "approvals expired"),
            Err(error) => tracing::warn!(%error, "approval expiry sweep failed"),
        }
    }
}

/// How often a node looks for runs waiting for credits that their organization's credits now
/// cover (a grant this node commits wakes them at once; this finds the rest: grants on other
/// nodes, credits other runs held and released).
const CREDIT_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Wakes runs waiting for credits until shutdown: those of an organization the moment this node
/// grants it credits, and every few seconds those of every organization.
async fn wake_paused_runs(
    service: Arc<RunService>,
    mut granted: tokio::sync::broadcast::Receiver<uuid::Uuid>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let org_id = tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CREDIT_SWEEP_EVERY) => None,
            signal = granted.recv() => match signal {
                Ok(org_id) => Some(org_id),
                // Missed some grants: the sweep covers every organization.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        match service.wake_paused_runs(org_id).await {
            Ok(0) => {}
            Ok(woken) => tracing::info!(woken, "runs waiting for credits woken"),
            Err(error) => tracing::warn!(%error, "sweep for runs waiting for credits failed"),
        }
    }
}
