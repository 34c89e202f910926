//! Agentry's application services: what a request asks, looked up, decided by the domain's
//! aggregates and recorded through the event store (`eventstore`).
//!
//! - [`agents`]: an organization's versioned agent definitions.
//! - [`billing`]: the credit ledger, reservations for LLM calls, Stripe checkout and webhooks.
//! - [`identity`]: registration, sessions, API keys, members, platform administration.
//! - [`quotas`]: per-organization plan limits: reading them with their use, enforcing them.
//! - [`tools`]: an organization's HTTP tools, and resolving them for the runtime.
//! - [`secret_box`]: sealing secrets (AES-256-GCM) before they go into an event.
//!
//! Knowledge joins here as a sibling. Nothing here holds a business rule:
//! those live in the `domain` crate.

pub mod agents;
pub mod billing;
pub mod identity;
pub mod pages;
pub mod quotas;
pub mod runs;
pub mod secret_box;
pub mod tools;
