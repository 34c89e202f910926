//! The flows that make the service write its events, each through the HTTP API (and the
//! `agentry admin create` binary) as a client would.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::Reply;

use crate::accounts::{add_member, create_api_key, ensure_verified, expect_json, platform_admin, register};
use crate::admin::{impersonate, impersonation_of};
use crate::run_flows::support::Flow;
use crate::smtp_server::link_token;

/// Sessions, API keys, invitations, roles, a password reset.
pub async fn identity(flow: &Flow) {
    let app = &flow.app;
    let ann = register(app, "ann").await;
    ensure_verified(app, &ann).await;
    let refreshed = app
        .post_json("/v1/auth/refresh", &json!({ "refresh_token": ann.refresh_token }))
        .await;
    expect_json(refreshed, StatusCode::OK, "refresh").await;

    let key = create_api_key(app, &ann.access_token, "deploy").await;
    let revoked = app
        .with_bearer(&ann.access_token)
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await;
    assert!(revoked.status().is_success(), "revoke: {}", revoked.status());

    let bob = add_member(app, &ann, "bob", "member").await;
    let members = format!("/v1/members/{}", bob.user_id);
    let promoted = app
        .with_bearer(&ann.access_token)
        .request(Method::PATCH, &members)
        .json(&json!({ "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.status(), StatusCode::NO_CONTENT, "role change");
    let removed = app.with_bearer(&ann.access_token).delete(&members).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT, "removal");

    let requested = app
        .post_json("/v1/auth/password-reset", &json!({ "email": ann.email }))
        .await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED, "reset request");
    let token = link_token(&app.mail_to(&ann.email, "password").await, "/reset-password");
    let confirmed = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &json!({ "token": token, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert!(confirmed.status().is_success(), "reset: {}", confirmed.status());
}

/// A platform administrator suspends and reactivates an organization, sets its quotas and
/// impersonates its owner.
pub async fn administration(flow: &Flow) {
    let app = &flow.app;
    let admin = platform_admin(app, "root").await;
    let owner = register(app, "carol").await;
    let as_admin = app.with_bearer(&admin.access_token);
    for action in ["suspend?reason=unpaid", "reactivate"] {
        let path = format!("/v1/admin/orgs/{}/{action}", owner.org_id);
        let response = as_admin.post_json(&path, &json!({})).await;
        assert!(response.status().is_success(), "{action}: {}", response.status());
    }
    let quotas = as_admin
        .request(Method::PUT, &format!("/v1/admin/orgs/{}/quotas", owner.org_id))
        .json(&json!({ "tokens_per_month": 1_000_000, "concurrent_runs": 10 }))
        .send()
        .await
        .unwrap();
    assert!(quotas.status().is_success(), "quotas: {}", quotas.status());
    let started = impersonate(
        app,
        &admin.access_token,
        &impersonation_of(owner.user_id, owner.org_id),
    )
    .await;
    let started = expect_json(started, StatusCode::CREATED, "impersonation").await;
    let id = started["impersonation_id"].as_str().unwrap();
    let ended = as_admin
        .post_json(&format!("/v1/admin/impersonations/{id}/end"), &json!({}))
        .await;
    assert!(ended.status().is_success(), "end: {}", ended.status());
    // The organization's credit account: opened with the signup grant, then a refund of all
    // but one credit, so its next run pauses for credits (and is cancelled).
    let signup = commands::billing::DEFAULT_SIGNUP_CREDITS;
    let refund = json!({ "credits": signup - 1, "reason": "goodwill" });
    let path = format!("/v1/admin/orgs/{}/refunds", owner.org_id);
    let refunded = as_admin.post_json(&path, &refund).await;
    assert!(refunded.status().is_success(), "refund: {}", refunded.status());
    let as_owner = app.with_bearer(&owner.access_token);
    let agent = as_owner
        .post_json("/v1/agents", &json!({ "name": "Echo", "model": "echo" }))
        .await;
    let agent = expect_json(agent, StatusCode::CREATED, "agent").await;
    let conversation =
        crate::runs::conversation(app, &owner.access_token, agent["id"].as_str().unwrap()).await;
    let run = crate::runs::start_run(app, &owner.access_token, &conversation, "Hello").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let read = expect_json(
            as_owner.get(&format!("/v1/runs/{run}")).await,
            StatusCode::OK,
            "run",
        )
        .await;
        if read["status"] == "awaiting_credits" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not pause: {read:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cancelled = as_owner
        .post_json(&format!("/v1/runs/{run}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED, "cancel");
}

/// A tool through its whole life (created, updated, its secret rotated, deleted), the tool
/// `lookup` the runs call, and an agent updated once. Answers the echo agent's id.
pub async fn tools_and_agents(flow: &Flow) -> String {
    let owner = flow.app.with_bearer(&flow.token);
    let tool = json!({
        "name": "scratch",
        "description": "Short-lived.",
        "parameters": { "type": "object" },
        "url": "https://tools.example.com/scratch",
    });
    let created = expect_json(
        owner.post_json("/v1/tools", &tool).await,
        StatusCode::CREATED,
        "tool",
    )
    .await;
    let path = format!("/v1/tools/{}", created["id"].as_str().unwrap());
    let updated = owner
        .request(Method::PATCH, &path)
        .json(&json!({ "timeout_ms": 2500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK, "tool update");
    let rotated = owner.post_json(&format!("{path}/secret"), &json!({})).await;
    assert_eq!(rotated.status(), StatusCode::OK, "rotation");
    let deleted = owner.delete(&path).await;
    assert!(deleted.status().is_success(), "delete: {}", deleted.status());
    flow.tool("lookup", "/lookup", None).await;

    let agent = json!({
        "name": "Echo",
        "model": "echo",
        "tools": ["lookup", "send_mail"],
        "approval": { "send_mail": "always" },
        "max_steps": 5,
    });
    let created = expect_json(
        owner.post_json("/v1/agents", &agent).await,
        StatusCode::CREATED,
        "agent",
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let updated = owner
        .request(Method::PATCH, &format!("/v1/agents/{id}"))
        .json(&json!({ "system_prompt": "Answer in one line.", "temperature": 0.2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK, "agent update");
    id
}

/// Runs of the echo agent: a plain answer, a tool call answered by the tool server, a call
/// approved (to a tool that does not exist: it fails), one denied, one cancelled while it
/// waits; a provider error that fails a run; and an archived conversation.
pub async fn runs(flow: &Flow, echo_agent: &str) {
    let (conversation, plain) = flow.run(echo_agent, "Hello there").await;
    flow.run_reaching(&plain, "completed").await;
    let (_, looked_up) = flow.run(echo_agent, r#"/tool lookup {"city": "Paris"}"#).await;
    flow.run_reaching(&looked_up, "completed").await;

    for decision in ["approve", "deny", "cancel"] {
        let (_, run_id) = flow.run(echo_agent, r#"/tool send_mail {"to": "bob"}"#).await;
        let waiting = flow.run_reaching(&run_id, "awaiting_approval").await;
        let call_id = waiting["steps"][0]["tool_calls"][0]["call_id"].as_str().unwrap();
        let path = format!("/v1/runs/{run_id}/tool-calls/{call_id}/{decision}");
        let owner = flow.app.with_bearer(&flow.token);
        match decision {
            "cancel" => flow.cancel(&run_id).await,
            _ => {
                let body = json!({ "reason": "not now" });
                assert_eq!(
                    owner.post_json(&path, &body).await.status(),
                    StatusCode::ACCEPTED,
                    "{decision}"
                );
            }
        }
        let end = if decision == "cancel" {
            "cancelled"
        } else {
            "completed"
        };
        flow.run_reaching(&run_id, end).await;
    }

    let provider_agent = flow.agent(&[], json!("never")).await;
    flow.llm
        .push(Reply::error(400).with_body(r#"{"error": {"message": "no"}}"#));
    let (_, refused) = flow.run(&provider_agent, "Hello").await;
    flow.run_reaching(&refused, "failed").await;

    let archived = flow
        .app
        .with_bearer(&flow.token)
        .post_json(&format!("/v1/conversations/{conversation}/archive"), &json!({}))
        .await;
    assert_eq!(archived.status(), StatusCode::NO_CONTENT, "archive");
}
