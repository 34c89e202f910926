//! Shared test plumbing: stores, contexts, NATS (shared and private), and stream readers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::Actor;
use domain::credit_account::{CreditAccount, CreditAccountCommand};
use eventstore::relay::NatsBus;
use eventstore::store::NewEvent;
use eventstore::{CommandBus, CommandContext, EventBus, EventStore, Relay, RequestOrigin};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The store every test uses: the real one, with the domain's upcasters.
pub fn store(pool: &PgPool) -> EventStore {
    EventStore::new(pool.clone(), domain::upcasting::upcasters())
}

/// Credits one test reservation holds.
pub const RESERVATION: u64 = 10;

/// Opens `org_id`'s credit account with `credits`.
pub async fn open_account(bus: &CommandBus<CreditAccount>, org_id: Uuid, credits: u64) {
    let open = CreditAccountCommand::Open {
        org_id,
        organization_event_id: Uuid::now_v7(),
        signup_grant: credits,
    };
    bus.execute(&org_id.to_string(), open, &context(org_id))
        .await
        .unwrap();
}

/// A reservation of [`RESERVATION`] credits under `key`, for a run of its own.
pub fn reserve(key: &str) -> CreditAccountCommand {
    CreditAccountCommand::Reserve {
        reservation_id: Uuid::now_v7(),
        run_id: Uuid::now_v7(),
        llm_call: key.to_owned(),
        credits: RESERVATION,
        price: None,
    }
}

/// A small stored event, for tests of the store and the relay that need no aggregate.
pub fn renamed_event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "organization.renamed".to_owned(),
        event_version: "1".to_owned(),
        payload: json!({ "type": "organization.renamed", "name": format!("name {n}") }).to_string(),
    }
}

/// A user acting in a fresh organization.
pub fn context(org_id: Uuid) -> CommandContext {
    CommandContext {
        actor: Actor::User { id: Uuid::new_v4() },
        org_id: Some(org_id),
        request: Some(RequestOrigin {
            request_id: format!("req-{}", Uuid::new_v4()),
            client_ip: Some("203.0.113.7".parse().unwrap()),
            user_agent: Some("agentry-tests/1".to_owned()),
        }),
        correlation_id: Uuid::now_v7(),
        causation_id: Some(Uuid::now_v7()),
        impersonator_id: None,
    }
}

/// The machine's NATS (CI makes sure it runs), overridable with `NATS_TEST_URL`.
pub fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub async fn nats_bus(url: &str) -> NatsBus {
    NatsBus::connect(url).await.expect("NATS client")
}

pub use testkit::{PrivateNats, id_counts, stream_events};

/// Starts a relay in the background; cancel the token to stop it.
pub fn spawn_relay(store: &EventStore, bus: EventBus, name: &str) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let relay = Relay::new(store, bus).with_name(name);
    tokio::spawn(relay.run(shutdown.clone()));
    shutdown
}
