//! Optimistic concurrency between nodes: racing commands never both win a decision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use domain::Role;
use domain::email_claim::{EmailClaim, EmailClaimCommand, EmailClaimError};
use domain::organization::{Organization, OrganizationCommand};
use eventstore::{CommandBus, CommandError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, store};

#[sqlx::test(migrations = "../migrations")]
async fn racing_claims_of_one_email_from_four_nodes_have_exactly_one_winner(pool: PgPool) {
    let nodes: Vec<Arc<CommandBus<EmailClaim>>> = (0..4)
        .map(|_| Arc::new(CommandBus::new(store(&pool), ())))
        .collect();
    let claim_id = "racing@example.com";
    let org_id = Uuid::now_v7();

    let mut racers = Vec::new();
    for racer in 0..16 {
        let node = Arc::clone(&nodes[racer % nodes.len()]);
        racers.push(tokio::spawn(async move {
            let claim = EmailClaimCommand::ClaimEmail {
                user_id: Uuid::new_v4(),
            };
            node.create(claim_id, claim, &context(org_id)).await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => winners += 1,
            Err(CommandError::Rejected(EmailClaimError::AlreadyClaimed)) => {}
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }

    assert_eq!(winners, 1);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "exactly one claim event is stored");
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_commands_on_one_aggregate_from_two_nodes_all_land_once(pool: PgPool) {
    let nodes = [
        Arc::new(CommandBus::<Organization>::new(store(&pool), ()).with_attempts(50)),
        Arc::new(CommandBus::<Organization>::new(store(&pool), ()).with_attempts(50)),
    ];
    let org_id = Uuid::now_v7();
    let id = org_id.to_string();
    let owner = Uuid::new_v4();
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: owner,
    };
    nodes[0].create(&id, create, &context(org_id)).await.unwrap();
    nodes[1].load(&id).await.unwrap();

    let members: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let mut tasks = Vec::new();
    for (index, member) in members.iter().copied().enumerate() {
        let node = Arc::clone(&nodes[index % 2]);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let add = OrganizationCommand::JoinByInvitation {
                user_id: member,
                role: Role::Member,
                invited_by: owner,
                invitation_id: Uuid::new_v4(),
            };
            node.execute(&id, add, &context(org_id)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let fresh = CommandBus::<Organization>::new(store(&pool), ());
    let organization = fresh.load(&id).await.unwrap();
    assert_eq!(
        organization.members().len(),
        41,
        "owner + every member, none lost"
    );
    let sequences: Vec<(i64,)> = sqlx::query_as("SELECT sequence FROM events ORDER BY sequence")
        .fetch_all(&pool)
        .await
        .unwrap();
    let expected: Vec<(i64,)> = (1..=42).map(|s| (s,)).collect();
    assert_eq!(
        sequences, expected,
        "one event per command, no gaps, no duplicates"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn without_retries_the_loser_of_a_race_gets_a_conflict_and_writes_nothing(pool: PgPool) {
    let node_a = CommandBus::<Organization>::new(store(&pool), ()).with_attempts(1);
    let node_b = CommandBus::<Organization>::new(store(&pool), ()).with_attempts(1);
    let org_id = Uuid::now_v7();
    let id = org_id.to_string();
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: Uuid::new_v4(),
    };
    node_a.create(&id, create, &context(org_id)).await.unwrap();
    node_b.load(&id).await.unwrap();
    let rename = |name: &str| OrganizationCommand::RenameOrganization {
        name: name.to_owned(),
    };

    node_a
        .execute(&id, rename("From A"), &context(org_id))
        .await
        .unwrap();
    let loser = node_b.execute(&id, rename("From B"), &context(org_id)).await;

    assert!(matches!(loser, Err(CommandError::Conflict)), "got {loser:?}");
    assert_eq!(node_a.load(&id).await.unwrap().name(), "From A");
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
    node_b
        .execute(&id, rename("From B"), &context(org_id))
        .await
        .expect("a retry by the caller wins");
}
