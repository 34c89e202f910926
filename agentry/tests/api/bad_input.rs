//! "Every route answers bad JSON, wrong types, oversize bodies (a documented limit) and unknown
//! routes with problem+json and the right status, never 500, and changes nothing."
//!
//! Table-driven: a route joins by adding rows to a table (or a table of its own run through
//! [`run_cases`]).

use std::convert::Infallible;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, check_problem};

/// `Settings::for_tests` limits request bodies to 64 KiB.
const MAX_BODY_BYTES: usize = 64 * 1024;

const JSON: Option<&str> = Some("application/json");

/// One bad request and the status it must answer.
struct Case {
    description: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: CaseBody,
    expected: StatusCode,
}

enum CaseBody {
    None,
    /// Sent with `Content-Length`.
    Fixed(Vec<u8>),
    /// Sent chunked (no `Content-Length`), in pieces of 8 KiB.
    Chunked(Vec<u8>),
}

impl Case {
    fn new(
        description: &'static str,
        method: Method,
        path: &'static str,
        content_type: Option<&'static str>,
        body: CaseBody,
        expected: StatusCode,
    ) -> Self {
        Self {
            description,
            method,
            path,
            content_type,
            body,
            expected,
        }
    }
}

fn text(body: &str) -> CaseBody {
    CaseBody::Fixed(body.as_bytes().to_vec())
}

fn json_body(value: &Value) -> CaseBody {
    CaseBody::Fixed(serde_json::to_vec(value).unwrap())
}

/// A registration the contract accepts (201): the malformed ones are derived from it, so each
/// differs from a good request in exactly one way.
fn valid_registration() -> Value {
    json!({
        "email": "ada@example.com",
        "password": "correct horse battery staple",
        "org_name": "Analytical Engines",
    })
}

fn registration_without(field: &str) -> Value {
    let mut body = valid_registration();
    body.as_object_mut().unwrap().remove(field);
    body
}

fn registration_with(field: &str, value: Value) -> Value {
    let mut body = valid_registration();
    body[field] = value;
    body
}

/// Sends every case, checks each answers its status as problem+json and that the event store
/// is as it was, and reports every mismatch at once.
async fn run_cases(app: &TestApp, cases: Vec<Case>) {
    let mut mismatches = Vec::new();
    for case in cases {
        let before = app.event_count().await;
        let mut request = app.request(case.method.clone(), case.path);
        if let Some(content_type) = case.content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        request = match case.body {
            CaseBody::None => request,
            CaseBody::Fixed(bytes) => request.body(bytes),
            CaseBody::Chunked(bytes) => request.body(chunked(bytes)),
        };
        let label = format!("{} ({} {})", case.description, case.method, case.path);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                mismatches.push(format!("{label}: no answer: {error}"));
                continue;
            }
        };
        if response.status().is_server_error() {
            mismatches.push(format!("{label}: answered {}", response.status()));
        }
        if let Err(mismatch) = check_problem(response, case.expected).await {
            mismatches.push(format!("{label}: {mismatch}"));
        }
        let after = app.event_count().await;
        if after != before {
            mismatches.push(format!("{label}: events went from {before} to {after}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} case(s) failed:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// A body without `Content-Length`: a stream of 8 KiB pieces.
fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let pieces: Vec<Result<Bytes, Infallible>> = bytes
        .chunks(8 * 1024)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(pieces))
}

/// 100 KiB of valid JSON, so only its size is wrong.
fn oversize_json() -> Vec<u8> {
    let padding = "x".repeat(100 * 1024);
    let body = serde_json::to_vec(&registration_with("org_name", Value::String(padding))).unwrap();
    assert!(body.len() > MAX_BODY_BYTES);
    body
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_404_and_405_problems() {
    let app = TestApp::spawn().await;
    let cases = vec![
        Case::new(
            "unknown /v1 route",
            Method::GET,
            "/v1/nope",
            None,
            CaseBody::None,
            StatusCode::NOT_FOUND,
        ),
        Case::new(
            "unknown /v1 route with a JSON body",
            Method::POST,
            "/v1/nope",
            JSON,
            json_body(&json!({ "a": 1 })),
            StatusCode::NOT_FOUND,
        ),
        Case::new(
            "unknown route outside /v1",
            Method::GET,
            "/nope",
            None,
            CaseBody::None,
            StatusCode::NOT_FOUND,
        ),
        Case::new(
            "unknown nested route",
            Method::GET,
            "/v1/auth/nope",
            None,
            CaseBody::None,
            StatusCode::NOT_FOUND,
        ),
        Case::new(
            "DELETE on a GET route",
            Method::DELETE,
            "/healthz",
            None,
            CaseBody::None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        Case::new(
            "POST on a GET route",
            Method::POST,
            "/readyz",
            JSON,
            json_body(&json!({})),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        Case::new(
            "GET on a POST route",
            Method::GET,
            "/v1/auth/register",
            None,
            CaseBody::None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        Case::new(
            "PUT on a POST route",
            Method::PUT,
            "/v1/auth/register",
            JSON,
            json_body(&valid_registration()),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];

    run_cases(&app, cases).await;

    assert_eq!(app.event_count().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn malformed_registrations_answer_400_problems_and_change_nothing() {
    let app = TestApp::spawn().await;
    let register = "/v1/auth/register";
    let post = Method::POST;
    let bad = StatusCode::BAD_REQUEST;
    let cases = vec![
        Case::new(
            "truncated JSON",
            post.clone(),
            register,
            JSON,
            text(r#"{"email":"#),
            bad,
        ),
        Case::new(
            "not JSON at all",
            post.clone(),
            register,
            JSON,
            text("email=ada@example.com"),
            bad,
        ),
        Case::new(
            "JSON followed by garbage",
            post.clone(),
            register,
            JSON,
            text(r#"{"email":"a@example.com","password":"pw-long-enough","org_name":"A"} trailing"#),
            bad,
        ),
        Case::new(
            "empty body",
            post.clone(),
            register,
            JSON,
            CaseBody::Fixed(Vec::new()),
            bad,
        ),
        Case::new(
            "invalid UTF-8",
            post.clone(),
            register,
            JSON,
            CaseBody::Fixed(vec![b'{', 0xff, 0xfe, b'}']),
            bad,
        ),
        Case::new(
            "every field the wrong type",
            post.clone(),
            register,
            JSON,
            json_body(&json!({ "email": 5, "password": true, "org_name": [] })),
            bad,
        ),
        Case::new(
            "email a number",
            post.clone(),
            register,
            JSON,
            json_body(&registration_with("email", json!(5))),
            bad,
        ),
        Case::new(
            "password a boolean",
            post.clone(),
            register,
            JSON,
            json_body(&registration_with("password", json!(true))),
            bad,
        ),
        Case::new(
            "org_name an array",
            post.clone(),
            register,
            JSON,
            json_body(&registration_with("org_name", json!([]))),
            bad,
        ),
        Case::new(
            "email null",
            post.clone(),
            register,
            JSON,
            json_body(&registration_with("email", Value::Null)),
            bad,
        ),
        Case::new(
            "body a JSON array",
            post.clone(),
            register,
            JSON,
            json_body(&json!([])),
            bad,
        ),
        Case::new(
            "body a JSON string",
            post.clone(),
            register,
            JSON,
            json_body(&json!("ada")),
            bad,
        ),
        Case::new("body JSON null", post.clone(), register, JSON, text("null"), bad),
        Case::new(
            "every field missing",
            post.clone(),
            register,
            JSON,
            json_body(&json!({})),
            bad,
        ),
        Case::new(
            "email missing",
            post.clone(),
            register,
            JSON,
            json_body(&registration_without("email")),
            bad,
        ),
        Case::new(
            "password missing",
            post.clone(),
            register,
            JSON,
            json_body(&registration_without("password")),
            bad,
        ),
        Case::new(
            "org_name missing",
            post.clone(),
            register,
            JSON,
            json_body(&registration_without("org_name")),
            bad,
        ),
        Case::new(
            "exactly the limit but not JSON",
            post.clone(),
            register,
            JSON,
            CaseBody::Fixed(vec![b'{'; MAX_BODY_BYTES]),
            bad,
        ),
        // Last: were it accepted, it would register someone (and show as events written).
        Case::new(
            "org_name a number, all else valid",
            post.clone(),
            register,
            JSON,
            json_body(&registration_with("org_name", json!(12345))),
            bad,
        ),
    ];

    run_cases(&app, cases).await;

    assert_eq!(app.event_count().await, 0);
    app.cleanup().await;
}

/// poem-openapi answers a JSON operation sent another content type, or none, with 415
/// (`ContentTypeError::{NotSupported, ExpectContentType}`), whatever the body holds.
#[tokio::test]
async fn registrations_in_other_content_types_answer_415_problems() {
    let app = TestApp::spawn().await;
    let register = "/v1/auth/register";
    let post = Method::POST;
    let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let valid = || json_body(&valid_registration());
    let cases = vec![
        Case::new(
            "text/plain",
            post.clone(),
            register,
            Some("text/plain"),
            valid(),
            unsupported,
        ),
        Case::new(
            "form encoded",
            post.clone(),
            register,
            Some("application/x-www-form-urlencoded"),
            text("email=ada%40example.com&password=secret-enough&org_name=A"),
            unsupported,
        ),
        Case::new(
            "application/xml",
            post.clone(),
            register,
            Some("application/xml"),
            text("<r/>"),
            unsupported,
        ),
        Case::new(
            "no content type",
            post.clone(),
            register,
            None,
            valid(),
            unsupported,
        ),
    ];

    run_cases(&app, cases).await;

    assert_eq!(app.event_count().await, 0);
    app.cleanup().await;
}

/// The limit (`AGENTRY_MAX_BODY_BYTES`) is enforced before routing, on the declared length and
/// on the bytes actually read, so a chunked body cannot slip past it.
#[tokio::test]
async fn bodies_over_the_limit_answer_413_problems_with_or_without_content_length() {
    let app = TestApp::spawn().await;
    let register = "/v1/auth/register";
    let post = Method::POST;
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    let cases = vec![
        Case::new(
            "100 KiB with Content-Length",
            post.clone(),
            register,
            JSON,
            CaseBody::Fixed(oversize_json()),
            too_large,
        ),
        Case::new(
            "100 KiB chunked",
            post.clone(),
            register,
            JSON,
            CaseBody::Chunked(oversize_json()),
            too_large,
        ),
        Case::new(
            "one byte over the limit",
            post.clone(),
            register,
            JSON,
            CaseBody::Fixed(vec![b' '; MAX_BODY_BYTES + 1]),
            too_large,
        ),
        Case::new(
            "one byte over the limit, chunked",
            post.clone(),
            register,
            JSON,
            CaseBody::Chunked(vec![b' '; MAX_BODY_BYTES + 1]),
            too_large,
        ),
        Case::new(
            "100 KiB in the wrong content type",
            post.clone(),
            register,
            Some("text/plain"),
            CaseBody::Fixed(oversize_json()),
            too_large,
        ),
        Case::new(
            "100 KiB to an unknown route",
            post.clone(),
            "/v1/nope",
            JSON,
            CaseBody::Fixed(oversize_json()),
            too_large,
        ),
        Case::new(
            "100 KiB chunked to an unknown route",
            post.clone(),
            "/v1/nope",
            JSON,
            CaseBody::Chunked(oversize_json()),
            too_large,
        ),
    ];

    run_cases(&app, cases).await;

    assert_eq!(app.event_count().await, 0);
    app.cleanup().await;
}

/// The control for the tables above: the body they spoil is itself accepted, so each of their
/// answers is about the one thing each case changed.
#[tokio::test]
async fn the_valid_registration_the_cases_spoil_is_accepted() {
    let app = TestApp::spawn().await;

    let response = app.post_json("/v1/auth/register", &valid_registration()).await;

    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(app.event_count().await > 0, "a registration writes events");
    app.cleanup().await;
}

/// Optional fields are left out, never `null` (the document marks nothing nullable): a `null`
/// anywhere in a body is 400 `null_value` naming the field, and records nothing; the same body
/// without the field is accepted.
#[tokio::test]
async fn a_null_field_is_refused_and_leaving_it_out_is_accepted() {
    let app = TestApp::spawn().await;
    let body =
        json!({ "email": "ada@example.com", "password": "correct horse battery staple", "org_name": "Ada" });
    let registered = app.post_json("/v1/auth/register", &body).await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let before = app.event_count().await;

    let with_null =
        json!({ "email": "ada@example.com", "password": "correct horse battery staple", "org_id": null });
    let problem = check_problem(
        app.post_json("/v1/auth/login", &with_null).await,
        StatusCode::BAD_REQUEST,
    )
    .await
    .unwrap();
    assert_eq!(problem["code"], "null_value", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("org_id"),
        "{problem}"
    );
    assert_eq!(app.event_count().await, before, "a refused login records nothing");

    let without = json!({ "email": "ada@example.com", "password": "correct horse battery staple" });
    assert_eq!(
        app.post_json("/v1/auth/login", &without).await.status(),
        StatusCode::OK
    );
    app.cleanup().await;
}
