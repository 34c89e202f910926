//! Tenant isolation: "another organization's resource answers 404, never its data".
//!
//! [`id_routes`] is a table of every `/v1` route that takes an id. Each row makes a resource
//! in organization A; the test calls the route with organization B's owner token and expects
//! a 404 problem that shows nothing of A and changes nothing, then (the control) makes the
//! same call as A's owner and expects it to work. A new route joins by adding a row; the
//! OpenAPI document is checked against the table, so a route without a row fails the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{Account, add_member, create_api_key, expect_json, register};
use crate::agents::{create_agent, definition as agent_definition};
use crate::audit::{audit_caught_up, audit_shows_nothing_of};
use crate::events::event_id_of;
use crate::helpers::{TestApp, check_problem};
use crate::runs::{conversation, echo_agent, waiting_call};
use crate::streams::connect_ws;
use crate::tools::{create_tool, definition as tool_definition};

/// Routes under this prefix are platform-wide (platform administrators act on any
/// organization by design); `admin.rs` tests who may call them.
const PLATFORM_ROUTES: &str = "/v1/admin/";

/// What a row made in organization A.
struct Resource {
    /// Goes into the route's `{…}` path segment.
    id: Uuid,
    /// A's data about it (names, emails, prefixes, secrets) that B must never see.
    private: Vec<String>,
    /// Goes into a second `{call_id}` segment (a run's tool call).
    call_id: Option<Uuid>,
    /// Goes into an `{aggregate_type}` segment (the history route): the resource's kind.
    kind: Option<&'static str>,
}

/// Makes a resource in the organization of the given owner.
type Setup = for<'a> fn(&'a TestApp, &'a Account) -> BoxFuture<'a, Resource>;

/// A `/v1` route that takes an id.
struct IdRoute {
    method: Method,
    /// As the OpenAPI document writes it: one `{…}` segment for the id.
    path: &'static str,
    body: Option<Value>,
    setup: Setup,
    /// What A's owner gets for the same call.
    success: StatusCode,
}

/// Every `/v1` route that takes an id. Add a row for each new one.
fn id_routes() -> Vec<IdRoute> {
    vec![
        IdRoute {
            method: Method::GET,
            path: "/v1/agents/{id}",
            body: None,
            setup: an_agent,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::PATCH,
            path: "/v1/agents/{id}",
            body: Some(json!({ "name": "renamed" })),
            setup: an_agent,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/conversations/{id}",
            body: None,
            setup: a_conversation,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/conversations/{id}/runs",
            body: None,
            setup: a_conversation,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::POST,
            path: "/v1/conversations/{id}/archive",
            body: Some(json!({})),
            setup: a_conversation,
            success: StatusCode::NO_CONTENT,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/runs/{id}",
            body: None,
            setup: a_waiting_run,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::POST,
            path: "/v1/runs/{id}/cancel",
            body: Some(json!({})),
            setup: a_waiting_run,
            success: StatusCode::ACCEPTED,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/runs/{id}/events",
            body: None,
            setup: a_waiting_run,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/runs/{id}/ws",
            body: None,
            setup: a_waiting_run,
            success: StatusCode::SWITCHING_PROTOCOLS,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/tools/{id}",
            body: None,
            setup: a_tool,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::PATCH,
            path: "/v1/tools/{id}",
            body: Some(json!({ "timeout_ms": 2000 })),
            setup: a_tool,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::DELETE,
            path: "/v1/tools/{id}",
            body: None,
            setup: a_tool,
            success: StatusCode::NO_CONTENT,
        },
        IdRoute {
            method: Method::POST,
            path: "/v1/tools/{id}/secret",
            body: Some(json!({})),
            setup: a_tool,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::DELETE,
            path: "/v1/api-keys/{id}",
            body: None,
            setup: an_api_key,
            success: StatusCode::NO_CONTENT,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/events/{id}",
            body: None,
            setup: an_event,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::GET,
            path: "/v1/history/{aggregate_type}/{aggregate_id}",
            body: None,
            setup: a_conversations_history,
            success: StatusCode::OK,
        },
        // A platform-wide aggregate: B sees nothing of a user who is not B's member.
        IdRoute {
            method: Method::GET,
            path: "/v1/history/{aggregate_type}/{aggregate_id}",
            body: None,
            setup: an_admin_members_account,
            success: StatusCode::OK,
        },
        IdRoute {
            method: Method::PATCH,
            path: "/v1/members/{user_id}",
            body: Some(json!({ "role": "member" })),
            setup: an_admin_member,
            success: StatusCode::NO_CONTENT,
        },
        IdRoute {
            method: Method::DELETE,
            path: "/v1/members/{user_id}",
            body: None,
            setup: an_admin_member,
            success: StatusCode::NO_CONTENT,
        },
        // Last, each with a fresh run of its own: A's controls let runs go on in the background.
        IdRoute {
            method: Method::POST,
            path: "/v1/runs/{id}/tool-calls/{call_id}/approve",
            body: Some(json!({})),
            setup: a_waiting_run,
            success: StatusCode::ACCEPTED,
        },
        IdRoute {
            method: Method::POST,
            path: "/v1/runs/{id}/tool-calls/{call_id}/deny",
            body: Some(json!({ "reason": "no" })),
            setup: a_waiting_run,
            success: StatusCode::ACCEPTED,
        },
        // Last: A's control starts a run whose steps are recorded in the background.
        IdRoute {
            method: Method::POST,
            path: "/v1/conversations/{id}/runs",
            body: Some(json!({ "input": "hello" })),
            setup: a_conversation,
            success: StatusCode::ACCEPTED,
        },
    ]
}

fn a_conversation<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let agent = echo_agent(app, &owner.access_token, 5).await;
        let id = conversation(app, &owner.access_token, &agent).await;
        Resource {
            id: id.parse().unwrap(),
            private: vec![agent, "Trip".to_owned()],
            call_id: None,
            kind: None,
        }
    })
}

/// A run of A's waiting for approval of a call (so cancel, approve and deny all apply).
fn a_waiting_run<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let (conversation_id, run_id, call_id) = waiting_call(app, &owner.access_token, "secret-bob").await;
        Resource {
            id: run_id.parse().unwrap(),
            private: vec![conversation_id, "secret-bob".to_owned()],
            call_id: Some(call_id.parse().unwrap()),
            kind: None,
        }
    })
}

fn an_agent<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let name = format!("agent of {}", owner.org_id.simple());
        let id = create_agent(app, &owner.access_token, &agent_definition(&name)).await;
        Resource {
            id: id.parse().unwrap(),
            private: vec![name, "Answer briefly.".to_owned()],
            call_id: None,
            kind: None,
        }
    })
}

fn a_tool<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let name = format!("tool_{}", Uuid::new_v4().simple());
        let created = create_tool(app, &owner.access_token, &tool_definition(&name)).await;
        Resource {
            id: created["id"].as_str().unwrap().parse().unwrap(),
            private: vec![
                name,
                created["secret"].as_str().unwrap().to_owned(),
                "tools.example.com".to_owned(),
                "Looks up the weather".to_owned(),
            ],
            call_id: None,
            kind: None,
        }
    })
}

fn an_api_key<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let name = format!("deploy key of {}", owner.org_id.simple());
        let key = create_api_key(app, &owner.access_token, &name).await;
        Resource {
            id: key.id,
            private: vec![name, key.prefix, key.key],
            call_id: None,
            kind: None,
        }
    })
}

/// An event of A's (an API key's creation), which A's owner can read: shown here first, so a
/// 404 for B below is about isolation and not about a route that never answers.
fn an_event<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let name = format!("event key of {}", owner.org_id.simple());
        let key = create_api_key(app, &owner.access_token, &name).await;
        let id = event_id_of(app, owner.org_id, "api_key.created").await;
        let path = format!("/v1/events/{id}");
        let event = expect_json(
            app.with_bearer(&owner.access_token).get(&path).await,
            StatusCode::OK,
            "the owner reading their event",
        )
        .await;
        assert_eq!(event["data"]["name"], name.as_str(), "{event}");
        Resource {
            id,
            private: vec![name, key.prefix, key.id.to_string()],
            call_id: None,
            kind: None,
        }
    })
}

fn an_admin_member<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let name = format!("admin-{}", Uuid::new_v4().simple());
        let member = add_member(app, owner, &name, "admin").await;
        Resource {
            id: member.user_id,
            private: vec![member.email],
            call_id: None,
            kind: None,
        }
    })
}

/// A conversation of A's, read through the history route.
fn a_conversations_history<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let resource = a_conversation(app, owner).await;
        Resource {
            kind: Some("conversation"),
            ..resource
        }
    })
}

/// The user account of an admin of A's, read through the history route (once A's audit log
/// holds its events).
fn an_admin_members_account<'a>(app: &'a TestApp, owner: &'a Account) -> BoxFuture<'a, Resource> {
    Box::pin(async move {
        let resource = an_admin_member(app, owner).await;
        audit_caught_up(app).await;
        Resource {
            kind: Some("user"),
            ..resource
        }
    })
}

impl IdRoute {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path with an `{aggregate_type}` segment replaced by the resource's kind, its first
    /// other `{…}` segment by the resource's id, and a `{call_id}` segment by its call.
    fn path_for(&self, resource: &Resource) -> String {
        let path = match resource.kind {
            Some(kind) => self.path.replace("{aggregate_type}", kind),
            None => self.path.to_owned(),
        };
        let (before, rest) = path.split_once('{').expect("a `{…}` segment");
        let (_, after) = rest.split_once('}').expect("a closing `}`");
        let path = format!("{before}{}{after}", resource.id);
        match resource.call_id {
            Some(call_id) => path.replace("{call_id}", &call_id.to_string()),
            None => path,
        }
    }

    /// A WebSocket route, called with a real upgrade (a plain request is refused before it
    /// names anything).
    fn is_socket(&self) -> bool {
        self.path.ends_with("/ws")
    }

    async fn call(&self, app: &TestApp, token: &str, resource: &Resource) -> reqwest::Response {
        if self.is_socket() {
            return upgrade(app, token, &self.path_for(resource)).await;
        }
        let mut request = app
            .with_bearer(token)
            .request(self.method.clone(), &self.path_for(resource));
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }
}

/// A WebSocket upgrade of `path`, its answer as a response: 101 when it opened (the socket is
/// dropped), else the refusal the server answered.
async fn upgrade(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    match connect_ws(app, path, Some(token), None).await {
        Ok(_) => reqwest::Response::from(
            tokio_tungstenite::tungstenite::http::Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS.as_u16())
                .body(Vec::new())
                .unwrap(),
        ),
        Err(tokio_tungstenite::tungstenite::Error::Http(refused)) => {
            reqwest::Response::from(refused.map(Option::unwrap_or_default))
        }
        Err(error) => panic!("{path}: the upgrade failed: {error}"),
    }
}

/// What organization A's owner is known by, besides what each resource adds.
fn private_to(owner: &Account) -> Vec<String> {
    vec![
        owner.email.clone(),
        owner.org_id.to_string(),
        owner.user_id.to_string(),
    ]
}

/// Each mismatch as a line, so one run reports every row that leaks.
async fn check_isolated(app: &TestApp, route: &IdRoute, a: &Account, b: &Account) -> Vec<String> {
    let label = route.label();
    let mut mismatches = Vec::new();
    let resource = (route.setup)(app, a).await;
    let before = app.settled_event_count().await;

    let response = route.call(app, &b.access_token, &resource).await;
    match check_problem(response, StatusCode::NOT_FOUND).await {
        Ok(problem) => {
            let text = problem.to_string();
            for secret in resource.private.iter().chain(&private_to(a)) {
                if text.contains(secret.as_str()) {
                    mismatches.push(format!("{label}: B's answer shows A's `{secret}`: {text}"));
                }
            }
        }
        Err(mismatch) => mismatches.push(format!("{label} with B's token: {mismatch}")),
    }
    let after = app.event_count().await;
    if after != before {
        mismatches.push(format!(
            "{label} with B's token: events went from {before} to {after}"
        ));
    }

    let control = route.call(app, &a.access_token, &resource).await;
    if control.status() != route.success {
        let status = control.status();
        let body = control.text().await.unwrap_or_default();
        mismatches.push(format!(
            "{label} with A's token (control): {status}, expected {}: {body}",
            route.success
        ));
    }
    mismatches
}

#[tokio::test]
async fn another_organizations_ids_answer_404_show_nothing_and_change_nothing() {
    let app = TestApp::spawn().await;
    let a = register(&app, "owner-a").await;
    let b = register(&app, "owner-b").await;

    let mut mismatches = Vec::new();
    for route in id_routes() {
        mismatches.extend(check_isolated(&app, &route, &a, &b).await);
    }

    assert!(
        mismatches.is_empty(),
        "{} mismatch(es):\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
    app.cleanup().await;
}

/// The audit routes take no id: they read the caller's organization's log, so B reading them
/// must see nothing of A's (A's control: its own export shows its organization).
#[tokio::test]
async fn the_audit_routes_show_nothing_of_another_organization() {
    let app = TestApp::spawn().await;
    let a = register(&app, "owner-a").await;
    let b = register(&app, "owner-b").await;
    create_api_key(&app, &a.access_token, "a's key").await;

    let leaks = audit_shows_nothing_of(&app, &b, &a).await;

    assert!(leaks.is_empty(), "{leaks:#?}");
    app.cleanup().await;
}

/// Keeps the table honest: every organization-scoped `/v1` route with a path parameter in the
/// published OpenAPI document must have a row in [`id_routes`].
#[tokio::test]
async fn every_v1_route_that_takes_an_id_is_in_the_isolation_table() {
    let app = TestApp::spawn().await;
    let document = expect_json(app.get("/openapi.json").await, StatusCode::OK, "openapi").await;
    let base = document["servers"][0]["url"].as_str().unwrap_or("");
    assert_eq!(
        base, "/v1",
        "the routes are served under /v1: {}",
        document["servers"]
    );
    let covered: Vec<String> = id_routes().iter().map(IdRoute::label).collect();

    let mut missing = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        let path = format!("{base}{path}");
        if !path.contains('{') || path.starts_with(PLATFORM_ROUTES) {
            continue;
        }
        for method in operations.as_object().unwrap().keys() {
            let label = format!("{} {path}", method.to_uppercase());
            if !covered.contains(&label) {
                missing.push(label);
            }
        }
    }

    assert!(
        missing.is_empty(),
        "routes that take an id but have no row in tenancy::id_routes: {missing:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn lists_show_only_the_callers_organization() {
    let app = TestApp::spawn().await;
    let a = register(&app, "owner-a").await;
    let a_member = add_member(&app, &a, "member-a", "member").await;
    let a_key = create_api_key(&app, &a.access_token, "a's key").await;
    let b = register(&app, "owner-b").await;
    let b_key = create_api_key(&app, &b.access_token, "b's key").await;
    let b_client = app.with_bearer(&b.access_token);

    let members = expect_json(b_client.get("/v1/members").await, StatusCode::OK, "members").await;
    let keys = expect_json(b_client.get("/v1/api-keys").await, StatusCode::OK, "keys").await;

    let member_ids: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(member_ids, [b.user_id.to_string()], "{members}");
    let key_ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(key_ids, [b_key.id.to_string()], "{keys}");
    let seen = format!("{members}{keys}");
    for secret in [
        a.email,
        a.user_id.to_string(),
        a_member.email,
        a_member.user_id.to_string(),
        a_key.id.to_string(),
        a_key.prefix,
        "a's key".to_owned(),
    ] {
        assert!(!seen.contains(&secret), "B's lists show A's `{secret}`: {seen}");
    }
    app.cleanup().await;
}
