//! Starting a conversation decides with the caller's standing as the node last read it (no
//! query), and its append confirms that standing: a member removed or demoted, an
//! organization suspended or a session ended since, on any node, writes nothing and gets the
//! answer its standing now calls for.
//!
//! Each test leaves the standing remembered on one node (`writer`: a conversation created
//! there, the allowed path shown to work), changes it through the other, and waits there for
//! the change to be visible: the writer itself never reads the standing in between.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::accounts::{
    Account, add_member, assert_code, create_api_key, expect_json, platform_admin, register,
};
use crate::admin::{impersonate, impersonation_of, suspend};
use crate::helpers::TestApp;
use crate::runs::echo_agent;

async fn create_conversation(node: &TestApp, token: &str, agent_id: &str) -> Response {
    node.with_bearer(token)
        .post_json("/v1/conversations", &json!({ "agent_id": agent_id }))
        .await
}

/// Two nodes on one database, an owner with an echo agent, and a member whose standing the
/// writer remembers (the member created a conversation there).
struct Scene {
    app: TestApp,
    writer: TestApp,
    owner: Account,
    member: Account,
    agent_id: String,
}

impl Scene {
    async fn new(configure: impl FnOnce(&mut agentry::settings::Settings) + Clone) -> Self {
        let app = TestApp::spawn_with(configure.clone()).await;
        let writer = app.spawn_node_with(configure).await;
        let owner = register(&app, "owner").await;
        let member = add_member(&app, &owner, "mia", "member").await;
        let agent_id = echo_agent(&app, &owner.access_token, 4).await;
        let scene = Self {
            app,
            writer,
            owner,
            member,
            agent_id,
        };
        scene.created(&scene.member).await;
        scene
    }

    /// `account` starts a conversation on the writer.
    async fn created(&self, account: &Account) {
        let response = create_conversation(&self.writer, &account.access_token, &self.agent_id).await;
        expect_json(
            response,
            StatusCode::CREATED,
            "a conversation started on the writer",
        )
        .await;
    }

    /// `account` is refused on the writer with `status` and `code`, and nothing is written.
    async fn refused(&self, account: &Account, status: StatusCode, code: &str) {
        let before = self.app.event_count().await;
        let response = create_conversation(&self.writer, &account.access_token, &self.agent_id).await;
        assert_code(response, status, code).await;
        assert_eq!(self.app.event_count().await, before, "nothing written");
    }

    /// Waits until `/v1/me` on the other node answers `account` with `status`: the change is
    /// in the read model every node reads.
    async fn visible(&self, account: &Account, status: StatusCode) {
        for _ in 0..100 {
            if self
                .app
                .with_bearer(&account.access_token)
                .get("/v1/me")
                .await
                .status()
                == status
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("/v1/me never answered {status}");
    }

    /// The owner removes the member, through the other node, and it is visible there.
    async fn remove_member(&self) {
        let path = format!("/v1/members/{}", self.member.user_id);
        let removed = self.app.with_bearer(&self.owner.access_token).delete(&path).await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        self.visible(&self.member, StatusCode::UNAUTHORIZED).await;
    }

    /// The owner gives the member `role`, through the other node.
    async fn set_role(&self, role: &str) {
        let path = format!("/v1/members/{}", self.member.user_id);
        let changed = self
            .app
            .with_bearer(&self.owner.access_token)
            .request(Method::PATCH, &path)
            .json(&json!({ "role": role }))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    }

    async fn cleanup(self) {
        self.writer.cleanup().await;
        self.app.cleanup().await;
    }
}

#[tokio::test]
async fn a_member_removed_on_another_node_starts_no_conversation() {
    let scene = Scene::new(|_| {}).await;
    scene.remove_member().await;

    scene
        .refused(&scene.member, StatusCode::UNAUTHORIZED, "membership_ended")
        .await;
    // Refused again: the refusal is remembered, never the standing before it.
    scene
        .refused(&scene.member, StatusCode::UNAUTHORIZED, "membership_ended")
        .await;
    scene.created(&scene.owner).await;
    scene.cleanup().await;
}

/// A request that fails before its append (an agent it cannot see) answers from the standing
/// read again, never from the remembered one: a 401, not a 404 that tells what the agent is.
#[tokio::test]
async fn a_removed_member_naming_an_unknown_agent_gets_the_refusal_not_a_404() {
    let scene = Scene::new(|_| {}).await;
    scene.remove_member().await;

    let unknown = uuid::Uuid::now_v7().to_string();
    let response = create_conversation(&scene.writer, &scene.owner.access_token, &unknown).await;
    assert_code(response, StatusCode::NOT_FOUND, "agent_not_found").await;
    let response = create_conversation(&scene.writer, &scene.member.access_token, &unknown).await;
    assert_code(response, StatusCode::UNAUTHORIZED, "membership_ended").await;
    scene.cleanup().await;
}

#[tokio::test]
async fn a_member_demoted_to_auditor_naming_an_unknown_agent_gets_the_refusal_not_a_404() {
    let scene = Scene::new(|_| {}).await;
    scene.set_role("auditor").await;

    let unknown = uuid::Uuid::now_v7().to_string();
    let response = create_conversation(&scene.writer, &scene.member.access_token, &unknown).await;
    assert_code(response, StatusCode::FORBIDDEN, "role_not_allowed").await;
    scene.cleanup().await;
}

#[tokio::test]
async fn a_member_demoted_to_auditor_starts_no_conversation_and_one_promoted_does() {
    let scene = Scene::new(|_| {}).await;
    scene.set_role("auditor").await;
    let me = scene
        .app
        .with_bearer(&scene.member.access_token)
        .get("/v1/me")
        .await;
    assert_eq!(me.json::<serde_json::Value>().await.unwrap()["role"], "auditor");
    scene
        .refused(&scene.member, StatusCode::FORBIDDEN, "role_not_allowed")
        .await;

    // A standing that changed and still allows the write: decided again, written once.
    scene.set_role("admin").await;
    let before = scene.app.event_count().await;
    scene.created(&scene.member).await;
    assert_eq!(scene.app.event_count().await, before + 1, "one conversation");
    scene.cleanup().await;
}

#[tokio::test]
async fn an_organization_suspended_on_another_node_starts_no_conversation() {
    let scene = Scene::new(|_| {}).await;
    scene.created(&scene.owner).await;
    let admin = platform_admin(&scene.app, "root").await;
    let suspended = suspend(&scene.app, &admin.access_token, scene.owner.org_id, "unpaid").await;
    assert_eq!(suspended.status(), StatusCode::NO_CONTENT);
    scene.visible(&scene.owner, StatusCode::FORBIDDEN).await;

    scene
        .refused(&scene.owner, StatusCode::FORBIDDEN, "organization_suspended")
        .await;
    scene
        .refused(&scene.member, StatusCode::FORBIDDEN, "organization_suspended")
        .await;
    scene.cleanup().await;
}

#[tokio::test]
async fn a_session_ended_on_another_node_starts_no_conversation() {
    // No grace for a spent refresh token: presenting it again ends the session at once.
    let scene = Scene::new(|settings| settings.identity.refresh_grace_ms = 0).await;
    let app = &scene.app;
    let refresh = |token: &str| {
        let body = json!({ "refresh_token": token });
        async move { app.post_json("/v1/auth/refresh", &body).await }
    };
    assert_eq!(
        refresh(&scene.member.refresh_token).await.status(),
        StatusCode::OK
    );
    let reused = refresh(&scene.member.refresh_token).await;
    assert_code(reused, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    scene.visible(&scene.member, StatusCode::UNAUTHORIZED).await;

    scene
        .refused(&scene.member, StatusCode::UNAUTHORIZED, "session_ended")
        .await;
    scene.cleanup().await;
}

#[tokio::test]
async fn an_api_key_revoked_on_another_node_starts_no_conversation() {
    let scene = Scene::new(|_| {}).await;
    let key = create_api_key(&scene.app, &scene.owner.access_token, "ci").await;
    let response = create_conversation(&scene.writer, &key.key, &scene.agent_id).await;
    expect_json(
        response,
        StatusCode::CREATED,
        "a conversation started with the key",
    )
    .await;

    let revoked = scene
        .app
        .with_bearer(&scene.owner.access_token)
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let before = scene.app.event_count().await;
    let response = create_conversation(&scene.writer, &key.key, &scene.agent_id).await;
    assert_code(response, StatusCode::UNAUTHORIZED, "api_key_revoked").await;
    assert_eq!(scene.app.event_count().await, before, "nothing written");
    scene.cleanup().await;
}

#[tokio::test]
async fn an_impersonation_ended_on_another_node_starts_no_conversation() {
    let scene = Scene::new(|_| {}).await;
    let admin = platform_admin(&scene.app, "root").await;
    let body = impersonation_of(scene.member.user_id, scene.owner.org_id);
    let started = impersonate(&scene.app, &admin.access_token, &body).await;
    let started = expect_json(started, StatusCode::CREATED, "impersonation").await;
    let impersonating = Account {
        access_token: started["access_token"].as_str().unwrap().to_owned(),
        ..scene.member.clone()
    };
    scene.created(&impersonating).await;

    let id = started["impersonation_id"].as_str().unwrap();
    let ended = scene
        .app
        .with_bearer(&admin.access_token)
        .post_json(&format!("/v1/admin/impersonations/{id}/end"), &json!({}))
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    scene.visible(&impersonating, StatusCode::UNAUTHORIZED).await;

    scene
        .refused(&impersonating, StatusCode::UNAUTHORIZED, "impersonation_ended")
        .await;
    // The impersonated member's own token is untouched.
    scene.created(&scene.member).await;
    scene.cleanup().await;
}
