//! Creating an API key does not wait for the read model, yet the key works at its very first
//! use on any node: authentication waits for the model when it meets a prefix it does not know.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;

use crate::accounts::{create_api_key, register};
use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn a_new_key_works_at_its_first_use_on_either_node_and_an_unknown_one_still_gets_401() {
    let app = TestApp::spawn().await;
    let node = app.spawn_node().await;
    let owner = register(&app, "owner").await;

    // Many rounds: a single one could pass by luck if the projector happened to be quick.
    for round in 0..20 {
        let key = create_api_key(&app, &owner.access_token, &format!("key {round}")).await;
        let user = if round % 2 == 0 { &app } else { &node };
        let response = user.with_bearer(&key.key).get("/v1/me").await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "round {round}: a key used right after its creation was refused: {body}"
        );
    }

    let unknown = format!("agk_{}_{}", "zzzzzzzz", "x".repeat(43));
    let refused = node.with_bearer(&unknown).get("/v1/me").await;
    assert_problem(refused, StatusCode::UNAUTHORIZED).await;
    node.cleanup().await;
    app.cleanup().await;
}
