//! Shared test plumbing: the real store and command buses, a runner driven to the end of the
//! log, raw events for shapes the current code no longer writes, and table snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::api_key::{ApiKey, ApiKeyCommand};
use domain::organization::{Organization, OrganizationCommand};
use domain::user::{User, UserCommand};
use domain::{Actor, EmailAddress};
use eventstore::log::load_checkpoint;
use eventstore::{CommandBus, CommandContext, Cursor, EventStore};
use projections::{IDENTITY, IdentityProjector, ProjectionRunner, Projector};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The store every test uses: the real one, with the domain's upcasters.
pub fn store(pool: &PgPool) -> EventStore {
    EventStore::new(pool.clone(), domain::upcasting::upcasters())
}

/// A runner of the identity projector.
pub fn runner(store: &EventStore) -> ProjectionRunner {
    runner_of(store, Arc::new(IdentityProjector))
}

/// A runner of any projector over the store's pool.
pub fn runner_of(store: &EventStore, projector: Arc<dyn Projector>) -> ProjectionRunner {
    ProjectionRunner::new(store, projector)
}

/// Steps `runner` until the identity checkpoint reaches the last event in the log, then checks
/// that one more step finds nothing.
///
/// It waits on the checkpoint rather than stopping at the first `false`: the follower's gate
/// hides events while any older transaction of the server (another test's, say) still runs.
pub async fn catch_up(runner: &ProjectionRunner, pool: &PgPool) {
    catch_up_as(runner, pool, IDENTITY).await;
}

/// [`catch_up`] for the projector named `name`.
pub async fn catch_up_as(runner: &ProjectionRunner, pool: &PgPool, name: &str) {
    let target = last_cursor(pool).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while load_checkpoint(pool, name).await.unwrap() < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector did not catch up"
        );
        if !runner.step().await.expect("a batch applies") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(
        !runner.step().await.unwrap(),
        "nothing is left after the last event"
    );
}

/// Where the identity projector stands.
pub async fn checkpoint(pool: &PgPool) -> Cursor {
    load_checkpoint(pool, IDENTITY).await.unwrap()
}

/// The cursor of the last event in the log.
pub async fn last_cursor(pool: &PgPool) -> Cursor {
    let (transaction_id, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, position FROM events ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    Cursor {
        transaction_id: transaction_id.parse().unwrap(),
        position,
    }
}

/// The `recorded_at` metadata of one stored event.
pub async fn recorded_at(pool: &PgPool, aggregate_id: Uuid, sequence: i64) -> DateTime<Utc> {
    let (at,): (DateTime<Utc>,) = sqlx::query_as(
        "SELECT (metadata ->> 'recorded_at')::timestamptz FROM events WHERE aggregate_id = $1 AND sequence = $2",
    )
    .bind(aggregate_id.to_string())
    .bind(sequence)
    .fetch_one(pool)
    .await
    .unwrap();
    at
}

/// Registers a user through the user aggregate; returns its id.
pub async fn register_user(store: &EventStore, email: &str, password_hash: &str) -> Uuid {
    let user_id = Uuid::now_v7();
    let register = UserCommand::RegisterUser {
        email: EmailAddress::parse(email).unwrap(),
        password_hash: password_hash.into(),
    };
    CommandBus::<User>::new(store.clone(), ())
        .create(&user_id.to_string(), register, &CommandContext::system(None))
        .await
        .unwrap();
    user_id
}

/// Sends a command to an existing user.
pub async fn user(store: &EventStore, user_id: Uuid, command: UserCommand) {
    CommandBus::<User>::new(store.clone(), ())
        .execute(&user_id.to_string(), command, &CommandContext::system(None))
        .await
        .unwrap();
}

/// Creates an organization owned by `owner`; returns its id.
pub async fn create_organization(store: &EventStore, name: &str, owner: Uuid) -> Uuid {
    let org_id = Uuid::now_v7();
    let create = OrganizationCommand::CreateOrganization {
        name: name.to_owned(),
        owner_user_id: owner,
    };
    CommandBus::<Organization>::new(store.clone(), ())
        .create(&org_id.to_string(), create, &CommandContext::system(Some(org_id)))
        .await
        .unwrap();
    org_id
}

/// Sends a command to an existing organization.
pub async fn organization(store: &EventStore, org_id: Uuid, command: OrganizationCommand) {
    CommandBus::<Organization>::new(store.clone(), ())
        .execute(
            &org_id.to_string(),
            command,
            &CommandContext::system(Some(org_id)),
        )
        .await
        .unwrap();
}

/// Creates an API key of `org_id` created by `by`; returns its id.
pub async fn create_api_key(store: &EventStore, org_id: Uuid, name: &str, prefix: &str, by: Actor) -> Uuid {
    let key_id = Uuid::now_v7();
    let create = ApiKeyCommand::CreateApiKey {
        org_id,
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        key_hash: format!("hash-of-{prefix}").into(),
        created_by: by,
    };
    CommandBus::<ApiKey>::new(store.clone(), ())
        .create(&key_id.to_string(), create, &CommandContext::system(Some(org_id)))
        .await
        .unwrap();
    key_id
}

/// Revokes an API key of `org_id`.
pub async fn revoke_api_key(store: &EventStore, org_id: Uuid, key_id: Uuid) {
    CommandBus::<ApiKey>::new(store.clone(), ())
        .execute(
            &key_id.to_string(),
            ApiKeyCommand::RevokeApiKey { by: Actor::System },
            &CommandContext::system(Some(org_id)),
        )
        .await
        .unwrap();
}

/// An event row written as is, bypassing the domain: for old or broken shapes.
pub struct RawEvent<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: &'a str,
    pub version: &'a str,
    pub payload: Value,
    pub metadata: Value,
}

impl RawEvent<'_> {
    /// A streaming run's text (`message.delta`), which most views ignore.
    pub fn streamed_text(run_id: &str, sequence: i64) -> RawEvent<'static> {
        RawEvent {
            aggregate_type: "run",
            aggregate_id: run_id.to_owned(),
            sequence,
            event_type: "message.delta",
            version: "1",
            payload: serde_json::json!({ "type": "message.delta", "step": 1, "chunks": ["Hel", "lo"] }),
            metadata: metadata(None),
        }
    }

    pub async fn insert(&self, pool: &PgPool) {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)",
        )
        .bind(self.aggregate_type)
        .bind(&self.aggregate_id)
        .bind(self.sequence)
        .bind(self.event_type)
        .bind(self.version)
        .bind(self.payload.to_string())
        .bind(self.metadata.to_string())
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Metadata as the store writes it, recorded now (to the microsecond, as Postgres keeps it).
pub fn metadata(org_id: Option<Uuid>) -> Value {
    let mut metadata = serde_json::json!({
        "actor": "system",
        "correlation_id": Uuid::now_v7().to_string(),
        "recorded_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    if let Some(org_id) = org_id {
        metadata["org_id"] = org_id.to_string().into();
    }
    metadata
}

/// Every row of the four identity tables, as JSON in key order.
pub async fn snapshot(pool: &PgPool) -> Value {
    let (snapshot,): (Value,) = sqlx::query_as(
        "SELECT jsonb_build_object(
            'users', (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.user_id), '[]') FROM users t),
            'organizations',
                (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.org_id), '[]') FROM organizations t),
            'memberships',
                (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.org_id, t.user_id), '[]') FROM memberships t),
            'api_keys', (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.key_id), '[]') FROM api_keys t))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    snapshot
}
