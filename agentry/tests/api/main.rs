//! The HTTP API end to end: the real application on an ephemeral port, against a fresh
//! database per test, spoken to over real HTTP. One test binary for the crate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod accounts;
mod admin;
mod agents;
mod api_keys;
mod audit;
mod audit_tampering;
mod bad_input;
mod billing;
mod billing_stripe;
mod bus_schema;
mod control_characters;
mod cors;
mod email_verification;
mod events;
mod helpers;
mod identity_flows;
mod impersonation_end;
mod invitations;
mod key_first_use;
mod key_prefix_collision;
mod killed_connections;
mod lookalike_emails;
mod not_yet_effective;
mod optional_fields;
mod parser_refusals;
mod password_reset;
mod races;
mod rate_limit;
mod refresh_grace;
mod registration_recovery;
mod roles;
mod run_flows;
mod runs;
mod schema_rules;
mod service_routes;
mod sign_in_limits;
mod smtp_server;
mod stale_nodes;
mod streams;
mod stripe_server;
mod tenancy;
mod time_travel;
mod tool_server;
mod tools;
