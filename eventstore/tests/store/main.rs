//! The event store against the real Postgres and the real NATS: one test binary for the crate.

mod append;
mod coalescing;
mod concurrency;
mod ended_sessions;
mod gate;
mod generic_plans;
mod group_commit;
mod held_connection;
mod helpers;
mod lag;
mod large_events;
mod linked;
mod log_order;
mod log_tail;
mod postgres_es_interop;
mod progress;
mod raw_publishes;
mod relay_lease;
mod relay_order;
mod relay_outage;
mod stall;
mod standing_guard;
mod storable;
mod subscriptions;
mod tls;
mod upcasting;
