//! Agents: an organization's versioned agent definitions (create, update, read, list).
//!
//! Every decision is the `agent` aggregate's; this module scopes each request to the caller's
//! organization (another organization's agent is answered as not found) and checks the role:
//! owners, admins and members (and API keys, which act as members) may create and update
//! agents, auditors only read them.

mod error;
mod models;
mod service;

pub use error::AgentsError;
pub use models::ModelCatalog;
pub use service::{AgentPage, AgentService, AgentSummary, VersionedAgent};
