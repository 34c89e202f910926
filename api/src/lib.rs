//! Agentry's process: configuration, the HTTP API and the background loops, in one binary.
//!
//! A newcomer's map:
//! - [`settings`]: the command line and environment (`agentry --help` lists every variable).
//! - [`platform`]: connects the parts every command needs: the database (created, migrated,
//!   or a private cluster when none is configured), the event store and the bus, and runs the
//!   background loops (relay, projectors).
//! - [`startup`]: builds the HTTP application on a bound port and serves it until stopped.
//! - [`http`]: what every route shares: problem+json errors, the body limit, request ids,
//!   access logs and metrics.
//! - [`routes`]: one file per resource, each an `#[OpenApi]` struct with its DTOs.
//! - [`telemetry`]: JSON logs and the Prometheus recorder.
//! - [`embedded_postgres`]: the private PostgreSQL for the zero-configuration default.
//! - [`restored_store`]: `agentry store restored`, run after restoring a logical dump.

pub mod embedded_postgres;
pub mod http;
pub mod identity_setup;
pub mod platform;
pub mod restored_store;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod telemetry;
