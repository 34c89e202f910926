//! The operator-facing routes: health, readiness, metrics, the OpenAPI document and docs, and
//! the request id every answer carries.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, media_type};

#[tokio::test]
async fn healthz_answers_200_while_the_process_lives() {
    let app = TestApp::spawn().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn readyz_answers_200_naming_postgres_ok_and_the_in_process_bus() {
    let app = TestApp::spawn().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(media_type(&response).as_deref(), Some("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    let nats = body["checks"]["nats"].as_str().unwrap_or_default();
    assert!(
        nats.contains("in-process"),
        "the bus check names the in-process bus: {body}"
    );
    // Each follower's lag, once the node has registered its followers (at start, in the background).
    let mut body = body;
    for _ in 0..50 {
        if body["followers"]["identity"].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        body = app.get("/readyz").await.json().await.unwrap();
    }
    for follower in ["relay", "identity", "audit"] {
        let lag = &body["followers"][follower];
        assert!(lag["events_behind"].is_i64(), "{follower}: {body}");
        assert!(lag["seconds_behind"].is_number(), "{follower}: {body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn readyz_answers_503_naming_postgres_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    app.drop_database_now().await;
    let response = app.get("/readyz").await;

    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("postgres"), "the detail names postgres: {detail}");
    // While the database is gone the process still lives.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_counting_requests_by_route_with_latency_buckets() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(media_type(&response).as_deref(), Some("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.lines().any(|line| line.starts_with("http_requests_total{")
            && line.contains(r#"route="/healthz""#)
            && line.contains(r#"status="200""#)),
        "a counter for /healthz:\n{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("http_request_duration_seconds_bucket{")),
        "a latency histogram:\n{text}"
    );
    app.cleanup().await;
}

/// Events appended, relay lag and the lag of each follower (the relay and every projector)
/// show once something was written.
#[tokio::test]
async fn metrics_report_appends_relay_lag_and_projector_lag_after_a_write() {
    let app = TestApp::spawn().await;
    let registered = app
        .post_json(
            "/v1/auth/register",
            &serde_json::json!({
                "email": "metrics@example.com",
                "password": "correct horse battery staple",
                "org_name": "Metrics",
            }),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);

    let mut text = String::new();
    for _ in 0..50 {
        text = app.get("/metrics").await.text().await.unwrap();
        if text.contains("agentry_relay_lag_seconds_bucket") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    for expected in [
        "agentry_events_appended_total{aggregate_type=\"organization\"}",
        "agentry_relay_lag_seconds_bucket",
        "agentry_follower_lag_seconds{follower=\"relay\"}",
        "agentry_follower_lag_seconds{follower=\"identity\"}",
        "agentry_projected_events_total{projector=\"identity\"}",
    ] {
        assert!(text.contains(expected), "/metrics lacks {expected}:\n{text}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_fold_unknown_routes_into_one_label() {
    let app = TestApp::spawn().await;
    for path in ["/no-such-a", "/no-such-b", "/v1/no-such-c"] {
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND);
    }

    let text = app.get("/metrics").await.text().await.unwrap();

    assert!(
        !text.contains("no-such"),
        "unknown paths never become labels:\n{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("http_requests_total{") && line.contains(r#"route="unmatched""#)),
        "unknown routes share the label `unmatched`:\n{text}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_document_served_under_v1() {
    let app = TestApp::spawn().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(media_type(&response).as_deref(), Some("application/json"));
    let document: Value = response.json().await.unwrap();
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with('3'), "OpenAPI 3: {version:?}");
    let servers = document["servers"].as_array().cloned().unwrap_or_default();
    assert!(
        servers.iter().any(|server| server["url"] == "/v1"),
        "a server entry /v1: {servers:?}"
    );
    assert!(document["paths"].is_object(), "a paths object");
    app.cleanup().await;
}

/// `/openapi.json` and `/docs` serve the finished document (operation ids, plain
/// `application/json` keys), the one the API crate's own tests check, not poem-openapi's draft.
#[tokio::test]
async fn openapi_json_and_docs_serve_the_finished_document() {
    let app = TestApp::spawn().await;

    let served: Value = app.get("/openapi.json").await.json().await.unwrap();
    let page = app.get("/docs").await.text().await.unwrap();

    assert_eq!(served, api::openapi_document());
    let register = &served["paths"]["/auth/register"]["post"];
    assert_eq!(register["operationId"], "registerUser");
    assert!(
        register["requestBody"]["content"]["application/json"].is_object(),
        "{register}"
    );
    let finished = serde_json::to_string_pretty(&served).unwrap();
    assert!(page.contains(&finished), "/docs embeds the finished document");
    app.cleanup().await;
}

#[tokio::test]
async fn docs_answer_an_html_page() {
    let app = TestApp::spawn().await;

    let response = app.get("/docs").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(media_type(&response).as_deref(), Some("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.to_ascii_lowercase().contains("<html"), "an HTML page");
    app.cleanup().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let oversize = vec![b'x'; 100 * 1024];
    let responses = vec![
        ("GET /healthz", app.get("/healthz").await),
        ("GET /readyz", app.get("/readyz").await),
        ("GET /metrics", app.get("/metrics").await),
        ("GET /openapi.json", app.get("/openapi.json").await),
        ("GET /docs", app.get("/docs").await),
        ("GET /v1/nope", app.get("/v1/nope").await),
        (
            "DELETE /healthz",
            app.request(reqwest::Method::DELETE, "/healthz")
                .send()
                .await
                .unwrap(),
        ),
        (
            "POST oversize",
            app.post_raw("/v1/auth/register", Some("application/json"), oversize)
                .await,
        ),
    ];

    let mut seen = std::collections::HashSet::new();
    for (request, response) in responses {
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let id = id.unwrap_or_else(|| panic!("{request} answered without x-request-id"));
        assert!(!id.is_empty(), "{request}: empty request id");
        assert!(seen.insert(id.clone()), "{request}: request id {id} reused");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_sane_incoming_request_id_is_echoed_back() {
    let app = TestApp::spawn().await;

    for path in ["/healthz", "/v1/nope"] {
        let response = app
            .request(reqwest::Method::GET, path)
            .header("X-Request-Id", "client-chosen-id-42")
            .send()
            .await
            .unwrap();

        assert_eq!(
            response.headers().get("x-request-id").unwrap(),
            "client-chosen-id-42",
            "{path}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_insane_incoming_request_id_is_replaced() {
    let app = TestApp::spawn().await;
    let too_long = "a".repeat(129);

    for incoming in ["has spaces in it", too_long.as_str()] {
        let response = app
            .request(reqwest::Method::GET, "/healthz")
            .header("X-Request-Id", incoming)
            .send()
            .await
            .unwrap();

        let id = response.headers().get("x-request-id").unwrap().to_str().unwrap();
        assert_ne!(id, incoming);
        assert!(!id.is_empty() && id.len() <= 128, "a fresh id: {id:?}");
    }
    app.cleanup().await;
}

/// Labels come from the routes we define, whatever the status: unauthenticated requests to an
/// id route with made-up ids (401 before the id is even read), invented methods and unknown
/// paths add no series.
#[tokio::test]
async fn no_request_adds_a_metric_series_of_its_own() {
    let app = TestApp::spawn().await;
    for made_up in ["xyzzy-1", "xyzzy-2", "xyzzy-3"] {
        let path = format!("/v1/members/{made_up}");
        assert_eq!(
            app.request(reqwest::Method::DELETE, &path)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let invented = reqwest::Method::from_bytes(format!("XYZZY{}", made_up.len() * 7).as_bytes()).unwrap();
        app.request(invented, "/healthz").send().await.unwrap();
    }

    let text = app.get("/metrics").await.text().await.unwrap();

    assert!(
        !text.contains("xyzzy") && !text.contains("XYZZY"),
        "made-up values became labels:\n{text}"
    );
    assert!(
        text.lines().any(|line| line.starts_with("http_requests_total{")
            && line.contains(r#"route="/v1/members/{id}""#)
            && line.contains(r#"status="401""#)),
        "the 401s are counted under the route's template:\n{text}"
    );
    app.cleanup().await;
}

/// With `AGENTRY_METRICS_LISTEN`, `/metrics` moves to that address: the public port no longer
/// serves it.
#[tokio::test]
async fn metrics_can_be_served_on_a_separate_address_only() {
    let app = TestApp::spawn_with(|settings| {
        settings.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = app.metrics_address.clone().expect("a metrics address");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    let separate = app.client.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(separate.status(), StatusCode::OK);
    assert!(separate.text().await.unwrap().contains("http_requests_total"));
    assert_problem(app.get("/metrics").await, StatusCode::NOT_FOUND).await;
    app.cleanup().await;
}
