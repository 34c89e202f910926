use std::sync::Arc;

use commands::agents::AgentService;
use commands::billing::BillingService;
use commands::identity::IdentityService;
use commands::quotas::QuotaService;
use commands::runs::RunService;
use commands::tools::ToolService;
use eventstore::{EventBus, EventStore};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use streams::RunStreams;

use tokio_util::sync::CancellationToken;

use crate::http::{BrowserOrigins, OrgRateLimits, RateLimits};
use crate::streaming::{StreamTimings, StreamWatch};

/// What the routes share, handed to each as poem data. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The event-store database, also holding the read models.
    pub pool: PgPool,
    /// Appends and loads events.
    pub store: EventStore,
    /// The bus (for readiness and, later, streaming).
    pub bus: EventBus,
    /// What the HTTP layer itself is configured with.
    pub config: Arc<HttpConfig>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Identity and tenancy.
    pub identity: Arc<IdentityService>,
    /// Agents.
    pub agents: Arc<AgentService>,
    /// Conversations and runs.
    pub runs: Arc<RunService>,
    /// Tools.
    pub tools: Arc<ToolService>,
    /// Credits, Stripe checkout and webhook.
    pub billing: Arc<BillingService>,
    /// The organizations' plan limits (the run service enforces them at a run's start).
    pub quotas: Arc<QuotaService>,
    /// Runs' live streams on this node.
    pub streams: RunStreams,
    /// The time of this node's open streams: heartbeats, standing checks, the end on shutdown.
    pub stream_watch: Arc<StreamWatch>,
    /// Cancelled when the server starts shutting down: open streams end at once, telling
    /// their clients where to resume, rather than hold the drain.
    pub stopping: CancellationToken,
    /// Per-key and per-user request budgets.
    pub rate_limits: Arc<RateLimits>,
    /// Per-organization request budgets, sized by each organization's plan.
    pub org_rate_limits: Arc<OrgRateLimits>,
    /// Per-client-address budgets of `/v1/auth/*`.
    pub auth_rate_limits: Arc<RateLimits>,
}

/// The settings the HTTP layer reads (the process's settings live in the `agentry` crate).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `/readyz` fails when a follower has left an event undelivered for longer than this.
    pub follower_stall_seconds: u64,
    /// Whether `/metrics` is served on the API's own port; `false` when operators serve it on
    /// a separate address ([`crate::metrics_app`]) and keep it off the public one.
    pub metrics_on_api_port: bool,
    /// A header set by a trusted proxy naming the client's address (its last entry counts);
    /// `None`: the TCP peer's address is the client's.
    pub trusted_proxy_header: Option<poem::http::HeaderName>,
    /// Web origins whose pages may call the API (CORS) and open its streams.
    pub browser_origins: BrowserOrigins,
    /// Heartbeats and standing checks of run streams.
    pub streams: StreamTimings,
}
