//! Racing requests on one aggregate through two nodes: a business rule holds even when both
//! requests are decided at the same moment on different processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use uuid::Uuid;

use crate::accounts::{add_member, register};
use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn two_owners_removing_each_other_at_once_leave_exactly_one_owner() {
    let first_node = TestApp::spawn().await;
    let second_node = first_node.spawn_node().await;

    for round in 0..5 {
        let ann = register(&first_node, &format!("ann{round}")).await;
        let bob = add_member(&first_node, &ann, &format!("bob{round}"), "owner").await;

        let (remove_bob, remove_ann) = (
            format!("/v1/members/{}", bob.user_id),
            format!("/v1/members/{}", ann.user_id),
        );
        let (ann_as_first, bob_as_second) = (
            first_node.with_bearer(&ann.access_token),
            second_node.with_bearer(&bob.access_token),
        );
        let (ann_removes_bob, bob_removes_ann) = tokio::join!(
            ann_as_first.delete(&remove_bob),
            bob_as_second.delete(&remove_ann)
        );
        let statuses = [ann_removes_bob.status(), bob_removes_ann.status()];

        let winners = statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count();
        assert_eq!(
            winners, 1,
            "round {round}: exactly one removal wins, got {statuses:?}"
        );
        // The loser was decided on the state after the winner: the last owner stays (422), or
        // the loser was already removed, seen when its request was authenticated (401) or by
        // the organization itself, which no longer counts them as a member (403).
        assert!(
            statuses.iter().all(|s| matches!(
                *s,
                StatusCode::NO_CONTENT
                    | StatusCode::UNPROCESSABLE_ENTITY
                    | StatusCode::UNAUTHORIZED
                    | StatusCode::FORBIDDEN
            )),
            "round {round}: {statuses:?}"
        );
        let owners: Vec<(Uuid,)> =
            sqlx::query_as("SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner'")
                .bind(ann.org_id)
                .fetch_all(&first_node.pool)
                .await
                .unwrap();
        assert_eq!(owners.len(), 1, "round {round}: one owner remains");
    }

    second_node.cleanup().await;
    first_node.cleanup().await;
}
