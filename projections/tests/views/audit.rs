//! The audit log: entries, their attribution to organizations, and the chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use domain::organization::{Organization, OrganizationCommand};
use domain::user::{User, UserCommand};
use domain::{Actor, EmailAddress, Role};
use eventstore::{CommandBus, CommandContext, EventStore, RequestOrigin};
use projections::audit::queries::{entries_after, verify_chain};
use projections::audit::{AUDIT, AuditEntry, AuditProjector, GENESIS_HASH};
use projections::{ProjectionRunner, Projector};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{RawEvent, catch_up_as, metadata, runner_of, store};

fn audit_runner(store: &EventStore) -> ProjectionRunner {
    runner_of(store, Arc::new(AuditProjector))
}

async fn log_of(pool: &PgPool, org_id: Uuid) -> Vec<AuditEntry> {
    entries_after(pool, org_id, 0, 1000).await.unwrap()
}

fn actions(entries: &[AuditEntry]) -> Vec<&str> {
    entries
        .iter()
        .map(|entry| entry.content.action.as_str())
        .collect()
}

/// A user acting in `org_id` through an HTTP request.
fn by_request(user_id: Uuid, org_id: Option<Uuid>) -> CommandContext {
    CommandContext {
        actor: Actor::User { id: user_id },
        org_id,
        request: Some(RequestOrigin {
            request_id: "req-42".into(),
            client_ip: Some("198.51.100.4".parse().unwrap()),
            user_agent: Some("audit-test/1".into()),
        }),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        impersonator_id: Some(Uuid::nil()),
    }
}

async fn register(store: &EventStore, user_id: Uuid, email: &str) {
    let register = UserCommand::RegisterUser {
        email: EmailAddress::parse(email).unwrap(),
        password_hash: "$argon2id$stub".into(),
    };
    CommandBus::<User>::new(store.clone(), ())
        .create(&user_id.to_string(), register, &by_request(user_id, None))
        .await
        .unwrap();
}

async fn create_organization(store: &EventStore, owner: Uuid) -> Uuid {
    let org_id = Uuid::now_v7();
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: owner,
    };
    CommandBus::<Organization>::new(store.clone(), ())
        .create(&org_id.to_string(), create, &by_request(owner, Some(org_id)))
        .await
        .unwrap();
    org_id
}

async fn organization(store: &EventStore, org_id: Uuid, by: Uuid, command: OrganizationCommand) {
    CommandBus::<Organization>::new(store.clone(), ())
        .execute(&org_id.to_string(), command, &by_request(by, Some(org_id)))
        .await
        .unwrap();
}

async fn change_password(store: &EventStore, user_id: Uuid) {
    let change = UserCommand::ChangePassword {
        password_hash: "$argon2id$new".into(),
    };
    CommandBus::<User>::new(store.clone(), ())
        .execute(&user_id.to_string(), change, &by_request(user_id, None))
        .await
        .unwrap();
}

fn add(user_id: Uuid, role: Role, by: Uuid) -> OrganizationCommand {
    OrganizationCommand::JoinByInvitation {
        user_id,
        role,
        invited_by: by,
        invitation_id: Uuid::now_v7(),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_becomes_an_entry_saying_who_did_what_to_what_when_and_from_where(pool: PgPool) {
    let store = store(&pool);
    let owner = Uuid::now_v7();
    let org_id = create_organization(&store, owner).await;

    catch_up_as(&audit_runner(&store), &pool, AUDIT).await;

    let log = log_of(&pool, org_id).await;
    assert_eq!(
        actions(&log),
        ["organization.created", "organization.member_added"]
    );
    let (event_id, recorded_at): (Uuid, String) = sqlx::query_as(
        "SELECT event_id, metadata ->> 'recorded_at' FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(org_id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    let first = &log[0];
    assert_eq!((first.org_id, first.seq), (org_id, 1));
    assert_eq!(first.content.event_id, event_id);
    assert_eq!(
        first.content.recorded_at,
        recorded_at.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    );
    assert_eq!(first.content.actor, format!("user:{owner}"));
    assert_eq!(
        first.content.impersonator_id.as_deref(),
        Some(Uuid::nil().to_string().as_str())
    );
    assert_eq!(first.content.target_type, "organization");
    assert_eq!(first.content.target_id, org_id.to_string());
    assert_eq!(first.content.request_id.as_deref(), Some("req-42"));
    assert_eq!(first.content.client_ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(first.content.user_agent.as_deref(), Some("audit-test/1"));
}

#[sqlx::test(migrations = "../migrations")]
async fn each_organization_has_its_own_chain_from_the_genesis_hash(pool: PgPool) {
    let store = store(&pool);
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let first = create_organization(&store, ann).await;
    let second = create_organization(&store, bob).await;
    organization(&store, first, ann, add(bob, Role::Member, ann)).await;

    catch_up_as(&audit_runner(&store), &pool, AUDIT).await;

    for (org_id, length) in [(first, 3), (second, 2)] {
        let log = log_of(&pool, org_id).await;
        assert_eq!(log.len(), length);
        assert_eq!(log[0].prev_hash, GENESIS_HASH.to_vec());
        for (index, entry) in log.iter().enumerate() {
            assert_eq!(entry.seq, index as i64 + 1);
            assert_eq!(entry.hash, entry.computed_hash().to_vec());
            if index > 0 {
                assert_eq!(entry.prev_hash, log[index - 1].hash);
            }
        }
        let check = verify_chain(&pool, org_id, |_| {}).await.unwrap();
        assert_eq!((check.broken(), check.checked()), (None, length as u64));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_registration_opens_the_log_of_the_organization_created_with_it(pool: PgPool) {
    let store = store(&pool);
    let ann = Uuid::now_v7();
    register(&store, ann, "ann@example.com").await;
    let org_id = create_organization(&store, ann).await;

    catch_up_as(&audit_runner(&store), &pool, AUDIT).await;

    assert_eq!(
        actions(&log_of(&pool, org_id).await),
        [
            "user.registered",
            "organization.created",
            "organization.member_added"
        ]
    );
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_held")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_persons_platform_event_is_in_the_log_of_each_organization_they_belong_to_then(pool: PgPool) {
    let store = store(&pool);
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    register(&store, bob, "bob@example.com").await;
    let bobs = create_organization(&store, bob).await;
    let anns = create_organization(&store, ann).await;
    organization(&store, anns, ann, add(bob, Role::Auditor, ann)).await;
    change_password(&store, bob).await;
    organization(
        &store,
        anns,
        ann,
        OrganizationCommand::RemoveMember {
            user_id: bob,
            by: ann,
        },
    )
    .await;
    change_password(&store, bob).await;

    catch_up_as(&audit_runner(&store), &pool, AUDIT).await;

    let count = |log: &[AuditEntry]| {
        log.iter()
            .filter(|entry| entry.content.action == "user.password_changed")
            .count()
    };
    assert_eq!(
        count(&log_of(&pool, bobs).await),
        2,
        "every change, in bob's own organization"
    );
    assert_eq!(
        count(&log_of(&pool, anns).await),
        1,
        "only the change while bob was a member"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replay_from_the_start_of_the_log_seals_nothing_twice_and_keeps_the_chain(pool: PgPool) {
    let store = store(&pool);
    let ann = Uuid::now_v7();
    register(&store, ann, "ann@example.com").await;
    let org_id = create_organization(&store, ann).await;
    let runner = audit_runner(&store);
    catch_up_as(&runner, &pool, AUDIT).await;
    let before = log_of(&pool, org_id).await;

    // What `agentry store restored` does: clear the read model and delete its checkpoint.
    let mut transaction = pool.begin().await.unwrap();
    AuditProjector.clear(&mut transaction).await.unwrap();
    sqlx::query("DELETE FROM follower_checkpoints WHERE name = $1")
        .bind(AUDIT)
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    change_password(&store, ann).await;
    catch_up_as(&runner, &pool, AUDIT).await;

    let after = log_of(&pool, org_id).await;
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(actions(&after[before.len()..]), ["user.password_changed"]);
    assert_eq!(verify_chain(&pool, org_id, |_| {}).await.unwrap().broken(), None);
}

/// Events of two organizations interleaved in one read of the log (what a busy node's sealer
/// gets): each organization's chain holds its own, in log order, linked and verifiable, and a
/// replay of the same read seals nothing twice.
#[sqlx::test(migrations = "../migrations")]
async fn interleaved_organizations_sealed_in_one_read_keep_their_own_chains(pool: PgPool) {
    let store = store(&pool);
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    for round in 1..=5_i64 {
        for org_id in [first, second] {
            RawEvent {
                aggregate_type: "organization",
                aggregate_id: org_id.to_string(),
                sequence: round,
                event_type: "organization.renamed",
                version: "1",
                payload: json!({ "type": "organization.renamed", "name": format!("name {round}") }),
                metadata: metadata(Some(org_id)),
            }
            .insert(&pool)
            .await;
        }
    }
    let runner = audit_runner(&store);
    catch_up_as(&runner, &pool, AUDIT).await;

    let logs = [log_of(&pool, first).await, log_of(&pool, second).await];
    for (org_id, log) in [first, second].into_iter().zip(&logs) {
        assert_eq!(log.len(), 5);
        let targets: Vec<_> = log.iter().map(|entry| entry.content.target_id.clone()).collect();
        assert_eq!(targets, vec![org_id.to_string(); 5], "only its own events");
        assert_eq!(log[0].prev_hash, GENESIS_HASH.to_vec());
        for (index, entry) in log.iter().enumerate() {
            assert_eq!(entry.seq, index as i64 + 1);
            assert_eq!(entry.hash, entry.computed_hash().to_vec());
        }
        let check = verify_chain(&pool, org_id, |_| {}).await.unwrap();
        assert_eq!((check.broken(), check.checked()), (None, 5));
    }

    // A replay from the start reads the same ten events again in one read.
    sqlx::query("DELETE FROM follower_checkpoints WHERE name = $1")
        .bind(AUDIT)
        .execute(&pool)
        .await
        .unwrap();
    catch_up_as(&runner, &pool, AUDIT).await;
    assert_eq!(log_of(&pool, first).await, logs[0]);
    assert_eq!(log_of(&pool, second).await, logs[1]);
}

/// A version-1 `organization.created` (`owner`, not `owner_user_id`) written by SQL is read in
/// its current shape: its founder's later platform events are attributed to it.
#[sqlx::test(migrations = "../migrations")]
async fn a_version_1_event_written_by_sql_is_read_through_the_upcaster(pool: PgPool) {
    let store = store(&pool);
    let (ann, org_id) = (Uuid::now_v7(), Uuid::now_v7());
    register(&store, ann, "ann@example.com").await;
    RawEvent {
        aggregate_type: "organization",
        aggregate_id: org_id.to_string(),
        sequence: 1,
        event_type: "organization.created",
        version: "1",
        payload: json!({ "type": "organization.created", "name": "Old", "owner": ann }),
        metadata: metadata(Some(org_id)),
    }
    .insert(&pool)
    .await;
    change_password(&store, ann).await;

    catch_up_as(&audit_runner(&store), &pool, AUDIT).await;

    assert_eq!(
        actions(&log_of(&pool, org_id).await),
        ["user.registered", "organization.created", "user.password_changed"]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_without_a_recording_time_stops_the_sealer_rather_than_leave_a_hole(pool: PgPool) {
    let store = store(&pool);
    let org_id = Uuid::now_v7();
    RawEvent {
        aggregate_type: "organization",
        aggregate_id: org_id.to_string(),
        sequence: 1,
        event_type: "organization.renamed",
        version: "1",
        payload: json!({ "type": "organization.renamed", "name": "X" }),
        metadata: json!({ "actor": "system", "org_id": org_id }),
    }
    .insert(&pool)
    .await;

    // The follower's gate may hide the event for a moment (other tests' transactions).
    let runner = audit_runner(&store);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let error = loop {
        match runner.step().await {
            Err(error) => break error,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("the sealer went past an event it cannot seal"),
        }
    };

    assert!(error.to_string().contains("recorded_at"), "{error}");
    assert!(log_of(&pool, org_id).await.is_empty());
}
