//! Agentry's application services: what a request asks, looked up, decided by the domain's
//! aggregates and recorded through the event store (`eventstore`).
//!
//! - [`agents`]: an organization's versioned agent definitions.
//! - [`identity`]: registration, sessions, API keys, members, platform administration.
//! - [`tools`]: an organization's HTTP tools, and resolving them for the runtime.
//! - [`secret_box`]: sealing secrets (AES-256-GCM) before they go into an event.
//!
//! Runs, billing and knowledge join here as siblings. Nothing here holds a business rule:
//! those live in the `domain` crate.

pub mod agents;
pub mod identity;
pub mod pages;
pub mod runs;
pub mod secret_box;
pub mod tools;
