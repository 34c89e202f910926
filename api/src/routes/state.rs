use std::sync::Arc;

use commands::identity::IdentityService;
use commands::{EventBus, EventStore};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::http::RateLimits;
use crate::settings::Settings;

/// What the routes share, handed to each as poem data. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The event-store database, also holding the read models.
    pub pool: PgPool,
    /// Appends and loads events.
    pub store: EventStore,
    /// The bus (for readiness and, later, streaming).
    pub bus: EventBus,
    /// The process settings.
    pub settings: Arc<Settings>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Identity and tenancy.
    pub identity: Arc<IdentityService>,
    /// Per-key and per-user request budgets.
    pub rate_limits: Arc<RateLimits>,
}
