//! The runs side of a process: the conversations and runs service the API uses, and the
//! executor with its in-process queue.

use std::sync::Arc;

use commands::runs::RunService;
use runtime::executor::{Executor, ExecutorSettings, NoTools, PriceTable, RunQueue};
use runtime::llm::Models;

use crate::platform::{Platform, PlatformError};
use crate::settings::Settings;

/// Builds the runs service and starts executing runs in this process (dispatched by its API,
/// and every run an earlier process left unfinished).
pub fn start_runs(platform: &mut Platform, settings: &Settings) -> Result<Arc<RunService>, PlatformError> {
    let prices = match &settings.runs.llm_prices {
        Some(overrides) => PriceTable::with_overrides(overrides)
            .map_err(|error| PlatformError::Config(format!("invalid AGENTRY_LLM_PRICES: {error}")))?,
        None => PriceTable::default(),
    };
    let (dispatcher, queue) = RunQueue::new();
    let service = Arc::new(RunService::new(&platform.store, Arc::new(dispatcher)));
    let executor = Arc::new(Executor::new(
        Arc::clone(&service),
        Models::echo_only(),
        Arc::new(NoTools),
        ExecutorSettings {
            prices,
            ..ExecutorSettings::default()
        },
    ));
    platform.spawn(queue.run(
        executor,
        settings.runs.max_concurrent_runs,
        platform.shutdown.clone(),
    ));
    Ok(service)
}
