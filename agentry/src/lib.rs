//! Agentry's process: configuration, startup and the background loops, around the HTTP API
//! (`api`), the application services (`commands`), the read models (`projections`) and the
//! event-store platform (`eventstore`).
//!
//! A newcomer's map:
//! - [`settings`]: the command line and environment (`agentry --help` lists every variable).
//! - [`platform`]: connects the parts every command needs: the database (created, migrated,
//!   or a private cluster when none is configured), the event store and the bus, and runs the
//!   background loops (relay, projectors).
//! - [`startup`]: builds the HTTP application on a bound port and serves it until stopped.
//! - [`identity_setup`]: the identity service from the settings.
//! - [`telemetry`]: JSON logs and the Prometheus recorder.
//! - [`embedded_postgres`]: the private PostgreSQL for the zero-configuration default.
//! - [`restored_store`]: `agentry store restored`, run after restoring a logical dump.
//! - [`audit_verify`]: `agentry audit verify`, which checks every audit chain.
//! - [`allocator`]: jemalloc as the global allocator (CPU per request, memory per idle socket).

pub mod allocator;
pub mod audit_verify;
pub mod billing_setup;
pub mod embedded_postgres;
pub mod identity_setup;
pub mod platform;
pub mod progress;
pub mod rebuild_projection;
pub mod restored_store;
pub mod runs_setup;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod tools_setup;
