//! Browser apps on other origins (`AGENTRY_CORS_ORIGINS`): what a browser is told it may do,
//! what stays as it was for everyone else, and WebSocket upgrades from pages on other sites.

use reqwest::header::{HeaderMap, ORIGIN};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::accounts::register;
use crate::helpers::{TestApp, assert_problem};

/// The frontend's origin in these tests.
const FRONTEND: &str = "https://app.example.com";
/// A page on another site.
const OTHER_SITE: &str = "https://evil.example";

/// The application with `AGENTRY_CORS_ORIGINS` set to `origins`.
async fn spawn_allowing(origins: &str) -> TestApp {
    let origins = origins.to_owned();
    TestApp::spawn_with(move |settings| settings.http.cors_origins = Some(origins)).await
}

/// A browser's preflight for `method` on `path` with `headers` (comma-separated, as Chromium
/// sends them: lower case).
async fn preflight(app: &TestApp, origin: &str, path: &str, method: &str, headers: &str) -> Response {
    app.request(Method::OPTIONS, path)
        .header(ORIGIN, origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("preflight")
}

/// A header's value as text ("" when absent).
fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A comma-separated header's entries, lower case.
fn listed(headers: &HeaderMap, name: &str) -> Vec<String> {
    header(headers, name)
        .split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// Every `Access-Control-*` header of an answer.
fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_without_credentials_and_is_cacheable() {
    let app = spawn_allowing(&format!("{FRONTEND},http://localhost:3000")).await;

    for (path, method, headers) in [
        ("/v1/me", "GET", "authorization,x-request-id"),
        ("/v1/auth/register", "POST", "content-type,idempotency-key"),
        (
            "/v1/members/00000000-0000-0000-0000-000000000000",
            "PATCH",
            "authorization,content-type",
        ),
        (
            "/v1/api-keys/00000000-0000-0000-0000-000000000000",
            "DELETE",
            "authorization",
        ),
        ("/v1/events", "GET", "authorization,last-event-id"),
    ] {
        let response = preflight(&app, FRONTEND, path, method, headers).await;

        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
        let answer = response.headers();
        assert_eq!(
            header(answer, "access-control-allow-origin"),
            FRONTEND,
            "{method} {path}"
        );
        let methods = listed(answer, "access-control-allow-methods");
        for expected in ["get", "post", "patch", "delete", "options"] {
            assert!(
                methods.contains(&expected.to_owned()),
                "{method} {path}: {methods:?}"
            );
        }
        let allowed = listed(answer, "access-control-allow-headers");
        for expected in [
            "authorization",
            "content-type",
            "idempotency-key",
            "last-event-id",
            "x-request-id",
        ] {
            assert!(
                allowed.contains(&expected.to_owned()),
                "{method} {path}: {allowed:?}"
            );
        }
        assert_eq!(header(answer, "access-control-max-age"), "600", "{method} {path}");
        assert_eq!(
            header(answer, "access-control-allow-credentials"),
            "",
            "{method} {path}: tokens are not cookies"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_may_read_answers_errors_and_the_headers_it_needs() {
    let app = spawn_allowing(FRONTEND).await;
    let account = register(&app, "cors-reader").await;

    let me = app
        .with_bearer(&account.access_token)
        .request(Method::GET, "/v1/me")
        .header(ORIGIN, FRONTEND)
        .send()
        .await
        .unwrap();

    assert_eq!(me.status(), StatusCode::OK);
    let headers = me.headers().clone();
    assert_eq!(header(&headers, "access-control-allow-origin"), FRONTEND);
    let exposed = listed(&headers, "access-control-expose-headers");
    for expected in ["location", "retry-after", "x-request-id"] {
        assert!(exposed.contains(&expected.to_owned()), "{exposed:?}");
    }
    assert!(
        listed(&headers, "vary").contains(&"origin".to_owned()),
        "{headers:?}"
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), "");
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["email"], account.email, "{body}");

    // A refusal too: the page can read the problem, not just see a network error.
    let refused = app
        .request(Method::GET, "/v1/me")
        .header(ORIGIN, FRONTEND)
        .send()
        .await
        .unwrap();
    assert_eq!(header(refused.headers(), "access-control-allow-origin"), FRONTEND);
    assert_problem(refused, StatusCode::UNAUTHORIZED).await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_origin_not_listed_gets_no_cors_headers_and_the_same_answer_as_without_one() {
    let app = spawn_allowing(FRONTEND).await;
    let account = register(&app, "cors-other").await;
    let as_user = app.with_bearer(&account.access_token);

    let plain = as_user.request(Method::GET, "/v1/me").send().await.unwrap();
    let from_other = as_user
        .request(Method::GET, "/v1/me")
        .header(ORIGIN, OTHER_SITE)
        .send()
        .await
        .unwrap();

    assert_eq!(cors_headers(from_other.headers()), Vec::<String>::new());
    assert_eq!(from_other.status(), plain.status());
    assert_eq!(from_other.text().await.unwrap(), plain.text().await.unwrap());

    // Its preflight is answered as any OPTIONS request is, allowing nothing.
    let plain = app.request(Method::OPTIONS, "/v1/me").send().await.unwrap();
    let from_other = preflight(&app, OTHER_SITE, "/v1/me", "GET", "authorization").await;
    assert_eq!(cors_headers(from_other.headers()), Vec::<String>::new());
    assert_eq!(from_other.status(), plain.status());
    assert_eq!(from_other.text().await.unwrap(), plain.text().await.unwrap());

    // An origin that only starts like the allowed one is another origin.
    let lookalike = format!("{FRONTEND}.evil.example");
    let response = preflight(&app, &lookalike, "/v1/me", "GET", "authorization").await;
    assert_eq!(cors_headers(response.headers()), Vec::<String>::new());
    app.cleanup().await;
}

#[tokio::test]
async fn without_the_setting_no_answer_carries_cors_headers() {
    let app = TestApp::spawn().await;
    let account = register(&app, "cors-unset").await;

    let preflight = preflight(&app, FRONTEND, "/v1/me", "GET", "authorization").await;
    assert_eq!(cors_headers(preflight.headers()), Vec::<String>::new());
    let me = app
        .with_bearer(&account.access_token)
        .request(Method::GET, "/v1/me")
        .header(ORIGIN, FRONTEND)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(cors_headers(me.headers()), Vec::<String>::new());
    app.cleanup().await;
}

#[tokio::test]
async fn a_star_allows_pages_on_any_origin() {
    let app = spawn_allowing("*").await;
    let account = register(&app, "cors-star").await;

    for origin in ["http://localhost:5173", "https://anything.example"] {
        let preflight = preflight(&app, origin, "/v1/me", "GET", "authorization").await;
        assert!(
            preflight.status().is_success(),
            "{origin}: {}",
            preflight.status()
        );
        assert_eq!(header(preflight.headers(), "access-control-allow-origin"), origin);

        let me = app
            .with_bearer(&account.access_token)
            .request(Method::GET, "/v1/me")
            .header(ORIGIN, origin)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        assert_eq!(header(me.headers(), "access-control-allow-origin"), origin);
        assert_eq!(header(me.headers(), "access-control-allow-credentials"), "");
    }
    app.cleanup().await;
}

/// A WebSocket handshake's request headers, from a page on `origin` (`None`: a program).
fn upgrade(app: &TestApp, path: &str, origin: Option<&str>) -> reqwest::RequestBuilder {
    let request = app
        .request(Method::GET, path)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    match origin {
        Some(origin) => request.header(ORIGIN, origin),
        None => request,
    }
}

#[tokio::test]
async fn a_websocket_upgrade_from_a_page_on_an_origin_not_allowed_is_refused() {
    let app = spawn_allowing(FRONTEND).await;

    let refused = upgrade(&app, "/healthz", Some(OTHER_SITE)).send().await.unwrap();
    let problem = assert_problem(refused, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["code"], "origin_not_allowed", "{problem}");

    // The allowed origin, the API's own pages and programs (no Origin) get the route's answer.
    let own = app.address.clone();
    for origin in [Some(FRONTEND), Some(own.as_str()), None] {
        let response = upgrade(&app, "/healthz", origin).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{origin:?}");
    }
    // A plain request from the other site is not an upgrade: served as before.
    let plain = app
        .request(Method::GET, "/healthz")
        .header(ORIGIN, OTHER_SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn without_the_setting_only_the_apis_own_pages_and_programs_may_upgrade() {
    let app = TestApp::spawn().await;

    let refused = upgrade(&app, "/v1/me", Some(FRONTEND)).send().await.unwrap();
    let problem = assert_problem(refused, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["code"], "origin_not_allowed", "{problem}");
    let own = app.address.clone();
    for origin in [Some(own.as_str()), None] {
        let response = upgrade(&app, "/healthz", origin).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{origin:?}");
    }
    app.cleanup().await;
}
