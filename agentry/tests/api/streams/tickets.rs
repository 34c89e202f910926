//! Stream tickets: one run, one use, 60 s, stored as a digest, never logged; refused with a
//! code of their own when used again, late, on another run, or after their credentials lost
//! their standing.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing_subscriber::fmt::MakeWriter;

use super::reading::finished_run;
use super::support::{
    SseReader, WsClient, connect_ws, events_path, open_sse, refusal, socket_path, sse_frames, ws_to_close,
};
use crate::accounts::{assert_code, create_api_key, expect_json, register};
use crate::helpers::TestApp;

/// `POST /v1/stream-tickets` for `run_id` with `token`'s credentials, answer unchecked.
async fn ask_ticket(app: &TestApp, token: &str, run_id: &str) -> reqwest::Response {
    app.with_bearer(token)
        .post_json("/v1/stream-tickets", &json!({ "run_id": run_id }))
        .await
}

/// A ticket for `run_id`.
async fn ticket(app: &TestApp, token: &str, run_id: &str) -> String {
    let issued = expect_json(
        ask_ticket(app, token, run_id).await,
        StatusCode::CREATED,
        "a ticket",
    )
    .await;
    issued["ticket"].as_str().unwrap().to_owned()
}

/// The run's SSE stream opened with `?ticket=` alone.
async fn sse_with(app: &TestApp, run_id: &str, ticket: &str) -> reqwest::Response {
    open_sse(app, &events_path(run_id, &format!("ticket={ticket}")), None, None).await
}

#[tokio::test]
async fn a_ticket_opens_its_runs_stream_once_and_only_its_digest_is_kept() {
    let app = TestApp::spawn().await;
    let token = register(&app, "ticket-holder").await.access_token;
    let run_id = finished_run(&app, &token, "read me with a ticket").await;

    let issued = expect_json(
        ask_ticket(&app, &token, &run_id).await,
        StatusCode::CREATED,
        "a ticket",
    )
    .await;
    let ticket = issued["ticket"].as_str().unwrap().to_owned();
    assert!(ticket.starts_with("agst_") && ticket.len() > 40, "{issued}");
    let expires_at: DateTime<Utc> = issued["expires_at"].as_str().unwrap().parse().unwrap();
    let lifetime = (expires_at - Utc::now()).num_seconds();
    assert!((55..=60).contains(&lifetime), "60 s: {issued}");
    let stored: Vec<String> = sqlx::query_scalar("SELECT ticket_hash FROM stream_tickets")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let digest: String = Sha256::digest(ticket.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(stored, [digest], "only the SHA-256 is stored");

    let events = SseReader::new(sse_with(&app, &run_id, &ticket).await)
        .read_to_end()
        .await;
    assert_eq!(sse_frames(&events).last().unwrap()["type"], "run.completed");
    assert_code(
        sse_with(&app, &run_id, &ticket).await,
        StatusCode::UNAUTHORIZED,
        "stream_ticket_used",
    )
    .await;

    let ticket = self::ticket(&app, &token, &run_id).await;
    let path = socket_path(&run_id, &format!("ticket={ticket}"));
    let mut socket = connect_ws(&app, &path, None, None)
        .await
        .expect("the ticket opens the socket");
    let (frames, code, _) = ws_to_close(&mut socket).await;
    assert_eq!(
        (frames.last().unwrap()["type"].as_str(), code),
        (Some("run.completed"), 1000)
    );
    let (status, _, problem) = refusal(connect_ws(&app, &path, None, None).await.expect_err("used"));
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("stream_ticket_used"))
    );

    for unknown in ["agst_unknown", "not-a-ticket", ""] {
        let response = sse_with(&app, &run_id, unknown).await;
        assert_code(response, StatusCode::UNAUTHORIZED, "invalid_stream_ticket").await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn expired_tickets_other_runs_tickets_and_other_organizations_runs_are_refused() {
    let app = TestApp::spawn().await;
    let a = register(&app, "ticket-a").await;
    let b = register(&app, "ticket-b").await;
    let first = finished_run(&app, &a.access_token, "first run").await;
    let second = finished_run(&app, &a.access_token, "second run").await;

    let late = ticket(&app, &a.access_token, &first).await;
    sqlx::query("UPDATE stream_tickets SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_code(
        sse_with(&app, &first, &late).await,
        StatusCode::UNAUTHORIZED,
        "stream_ticket_expired",
    )
    .await;

    let misdirected = ticket(&app, &a.access_token, &first).await;
    let response = sse_with(&app, &second, &misdirected).await;
    assert_code(response, StatusCode::FORBIDDEN, "stream_ticket_for_another_run").await;
    let response = sse_with(&app, &first, &misdirected).await;
    assert_code(response, StatusCode::UNAUTHORIZED, "stream_ticket_used").await;

    // B gets no ticket for A's run, and B's ticket does not open it.
    let problem = assert_code(
        ask_ticket(&app, &b.access_token, &first).await,
        StatusCode::NOT_FOUND,
        "run_not_found",
    )
    .await;
    assert!(!problem.to_string().contains(&a.org_id.to_string()), "{problem}");
    let b_run = finished_run(&app, &b.access_token, "b's run").await;
    let b_ticket = ticket(&app, &b.access_token, &b_run).await;
    let response = sse_with(&app, &first, &b_ticket).await;
    assert_code(response, StatusCode::FORBIDDEN, "stream_ticket_for_another_run").await;

    // A ticket acts as the credentials that asked for it, as they stand when it is used.
    let key = create_api_key(&app, &a.access_token, "browser backend").await;
    let revoked_later = ticket(&app, &key.key, &first).await;
    let revoke = app
        .with_bearer(&a.access_token)
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let response = sse_with(&app, &first, &revoked_later).await;
    assert_code(response, StatusCode::UNAUTHORIZED, "api_key_revoked").await;
    app.cleanup().await;
}

#[tokio::test]
async fn of_concurrent_uses_of_one_ticket_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let token = register(&app, "ticket-race").await.access_token;
    let run_id = finished_run(&app, &token, "race for it").await;

    for round in 0..5 {
        let ticket = ticket(&app, &token, &run_id).await;
        let uses = (0..6).map(|_| async {
            let response = sse_with(&app, &run_id, &ticket).await;
            let status = response.status();
            let body = response.text().await.unwrap();
            (status, body)
        });
        let answers = futures::future::join_all(uses).await;
        let won = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::OK)
            .count();
        assert_eq!(won, 1, "round {round}: {answers:?}");
        for (status, body) in answers.iter().filter(|(status, _)| *status != StatusCode::OK) {
            assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
            assert!(body.contains("stream_ticket_used"), "{body}");
        }
    }
    app.cleanup().await;
}

/// Log lines, as the process would print them, gathered in memory.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The access log names the route and the path, never the query a ticket travels in. The
/// test's runtime has one thread, so the server's every task logs into this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_ticket_never_appears_in_the_logs() {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter("debug")
        .with_writer(logs.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let app = TestApp::spawn().await;
    let token = register(&app, "ticket-logs").await.access_token;
    let run_id = finished_run(&app, &token, "keep it secret").await;

    let used = ticket(&app, &token, &run_id).await;
    SseReader::new(sse_with(&app, &run_id, &used).await)
        .read_to_end()
        .await;
    assert_eq!(
        sse_with(&app, &run_id, &used).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let socket = ticket(&app, &token, &run_id).await;
    let mut opened = connect_ws(
        &app,
        &socket_path(&run_id, &format!("ticket={socket}")),
        None,
        None,
    )
    .await
    .unwrap();
    ws_to_close(&mut opened).await;
    app.cleanup().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let stream_lines = text
        .lines()
        .filter(|line| line.contains("request finished") && line.contains(&format!("/v1/runs/{run_id}/")))
        .count();
    assert!(
        stream_lines >= 3,
        "the access log has the stream requests: {text}"
    );
    for secret in [&used, &socket] {
        let secret_part = secret.trim_start_matches("agst_");
        assert!(!text.contains(secret_part), "a ticket in the logs: {text}");
    }
}

/// A browser's way in: a page on an allowed origin opens the socket with a ticket; a page on
/// another site is refused before anything else, ticket or not.
#[tokio::test]
async fn a_page_on_an_allowed_origin_opens_a_socket_with_a_ticket_and_other_sites_cannot() {
    let frontend = "https://app.example";
    let app = TestApp::spawn_with(|settings| settings.http.cors_origins = Some(frontend.to_owned())).await;
    let token = register(&app, "browser").await.access_token;
    let run_id = finished_run(&app, &token, "from a page").await;

    let ticket = self::ticket(&app, &token, &run_id).await;
    let path = socket_path(&run_id, &format!("ticket={ticket}"));
    let foreign = WsClient {
        origin: Some("https://evil.example"),
        ..WsClient::default()
    };
    let (status, _, problem) = refusal(foreign.connect(&app, &path).await.expect_err("another site"));
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );

    let page = WsClient {
        origin: Some(frontend),
        ..WsClient::default()
    };
    let mut socket = page
        .connect(&app, &path)
        .await
        .expect("the refusal left the ticket unused");
    let (frames, code, _) = ws_to_close(&mut socket).await;
    assert_eq!(
        (frames.last().unwrap()["type"].as_str(), code),
        (Some("run.completed"), 1000)
    );
    app.cleanup().await;
}
