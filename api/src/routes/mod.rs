//! HTTP routes: service routes (health, readiness, metrics, docs) and the `/v1` API, one
//! `#[OpenApi]` struct per resource.

mod admin;
mod agents;
mod api_keys;
mod audit;
mod auth;
mod billing;
mod conversations;
mod events;
mod history;
mod me;
mod members;
mod quotas;
mod roles;
mod run_streams;
mod runs;
mod service;
mod state;
mod tags;
mod tools;
mod usage;

pub use admin::AdminApi;
pub use agents::AgentsApi;
pub use api_keys::ApiKeysApi;
pub use audit::AuditApi;
pub use auth::AuthApi;
pub use billing::BillingApi;
pub use conversations::ConversationsApi;
pub use events::EventsApi;
pub use history::HistoryApi;
pub use me::MeApi;
pub use members::MembersApi;
pub use quotas::QuotasApi;
pub use run_streams::RunStreamsApi;
pub use runs::RunsApi;
pub use service::{metrics_routes, service_routes};
pub use state::{AppState, HttpConfig};
pub use tools::ToolsApi;
pub use usage::UsageApi;

/// Every `/v1` API, in the order the docs list them.
pub type V1Apis = (
    AuthApi,
    MeApi,
    ApiKeysApi,
    MembersApi,
    AgentsApi,
    ConversationsApi,
    RunsApi,
    RunStreamsApi,
    ToolsApi,
    EventsApi,
    AuditApi,
    UsageApi,
    HistoryApi,
    BillingApi,
    QuotasApi,
    AdminApi,
);

/// Every `/v1` API, in the order the docs list them.
pub fn v1_apis() -> V1Apis {
    (
        AuthApi,
        MeApi,
        ApiKeysApi,
        MembersApi,
        AgentsApi,
        ConversationsApi,
        RunsApi,
        RunStreamsApi,
        ToolsApi,
        EventsApi,
        AuditApi,
        UsageApi,
        HistoryApi,
        BillingApi,
        QuotasApi,
        AdminApi,
    )
}
