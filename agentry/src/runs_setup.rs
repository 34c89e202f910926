//! The runs side of a process: the conversations and runs service the API uses, and the
//! executor with its in-process queue.

use std::sync::Arc;

use commands::runs::RunDispatch;
use commands::runs::RunService;
use eventstore::EventBus;
use runtime::executor::{
    Executor, ExecutorSettings, NatsDispatcher, NatsRunQueue, NoTools, PriceTable, QueueNames, RunQueue,
};
use runtime::llm::Models;

use crate::platform::{Platform, PlatformError};
use crate::settings::Settings;

/// Builds the runs service and starts executing runs in this process: with the in-process bus,
/// the runs its API dispatches and every run an earlier process left unfinished; with NATS,
/// runs from the JetStream work queue every node's API feeds, shared with the other workers.
pub async fn start_runs(
    platform: &mut Platform,
    settings: &Settings,
) -> Result<Arc<RunService>, PlatformError> {
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
    let service = Arc::new(RunService::new(&platform.store, dispatcher));
    let executor = Arc::new(Executor::new(
        Arc::clone(&service),
        Models::echo_only(),
        Arc::new(NoTools),
        ExecutorSettings {
            prices,
            ..ExecutorSettings::default()
        },
    ));
    let (limit, shutdown) = (settings.runs.max_concurrent_runs, platform.shutdown.clone());
    match queue {
        Queue::Local(queue) => platform.spawn(queue.run(executor, limit, shutdown)),
        Queue::Nats(queue) => platform.spawn(queue.run(executor, limit, shutdown)),
    }
    Ok(service)
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
