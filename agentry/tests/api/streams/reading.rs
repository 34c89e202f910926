//! Reading a run over SSE and WebSocket: a late reader gets the whole run and then the end;
//! a reader that resumes after an id, mid-message, gets every later event once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::Reply;

use super::support::{
    SseReader, WsItem, connect_ws, events_path, expect_ws, ids_and_types, next_ws, open_sse, recorded_frames,
    refusal, socket_path, sse_frames, streamed_text, ws_to_close,
};
use crate::accounts::register;
use crate::helpers::{TestApp, assert_problem};
use crate::run_flows::support::Flow;
use crate::runs::{conversation, echo_agent, run_reaching, start_run};

/// A completed `echo` run of `input` (one `message.delta` chunk per word).
pub async fn finished_run(app: &TestApp, token: &str, input: &str) -> String {
    let agent = echo_agent(app, token, 5).await;
    let conversation_id = conversation(app, token, &agent).await;
    let run_id = start_run(app, token, &conversation_id, input).await;
    run_reaching(app, token, &run_id, "completed").await;
    run_id
}

/// 1, 2, 3, … with no gap and no repeat.
fn assert_consecutive(frames: &[(u64, String)]) {
    let ids: Vec<u64> = frames.iter().map(|(id, _)| *id).collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "stream ids with a gap or a repeat: {frames:?}");
}

#[tokio::test]
async fn a_late_reader_gets_the_whole_finished_run_then_the_end_over_both_transports() {
    let app = TestApp::spawn().await;
    let token = register(&app, "late-reader").await.access_token;
    let input = "one two three four five six seven eight nine ten";
    let run_id = finished_run(&app, &token, input).await;
    let recorded = recorded_frames(&app, &run_id).await;
    assert_consecutive(&recorded);
    let last = recorded.last().unwrap().0;

    let messages = SseReader::new(open_sse(&app, &events_path(&run_id, ""), Some(&token), None).await)
        .read_to_end()
        .await;
    let frames = sse_frames(&messages);
    assert_eq!(
        ids_and_types(&frames, &run_id),
        recorded,
        "SSE: the store's events, each once"
    );
    assert_eq!(streamed_text(&frames), input);
    assert_eq!(frames.last().unwrap()["type"], "run.completed");

    // On the wire: `id:` and one `data:` line per event, no `event:` line.
    let raw = open_sse(&app, &events_path(&run_id, ""), Some(&token), None).await;
    let raw = raw.text().await.unwrap();
    assert!(raw.starts_with("id: 1\ndata: {\"id\":1,"), "{raw}");
    assert!(!raw.contains("event:"), "{raw}");
    assert_eq!(raw.matches("\n\n").count(), recorded.len(), "{raw}");

    let mut socket = expect_ws(&app, &socket_path(&run_id, ""), &token).await;
    let (frames, code, reason) = ws_to_close(&mut socket).await;
    assert_eq!(ids_and_types(&frames, &run_id), recorded, "WebSocket: the same");
    assert_eq!((code, reason.as_str()), (1000, "run_ended"));

    // Resuming in the middle gets the rest exactly; after the last, nothing.
    let middle = last / 2;
    let rest = SseReader::new(open_sse(&app, &events_path(&run_id, ""), Some(&token), Some(middle)).await)
        .read_to_end()
        .await;
    assert_eq!(
        ids_and_types(&sse_frames(&rest), &run_id),
        recorded[middle as usize..]
    );
    let mut socket = expect_ws(&app, &socket_path(&run_id, &format!("after={middle}")), &token).await;
    let (frames, code, _) = ws_to_close(&mut socket).await;
    assert_eq!(ids_and_types(&frames, &run_id), recorded[middle as usize..]);
    assert_eq!(code, 1000);

    let nothing_after = open_sse(&app, &events_path(&run_id, ""), Some(&token), Some(last)).await;
    assert_eq!(
        nothing_after.status(),
        StatusCode::NO_CONTENT,
        "an EventSource resuming after the end is told to stop"
    );
    let mut socket = expect_ws(&app, &socket_path(&run_id, &format!("after={last}")), &token).await;
    assert_eq!(
        ws_to_close(&mut socket).await,
        (Vec::new(), 1000, "run_ended".to_owned())
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_id_the_run_never_had_and_other_bad_opens_are_problems() {
    let app = TestApp::spawn().await;
    let token = register(&app, "bad-opens").await.access_token;
    let run_id = finished_run(&app, &token, "just three words").await;
    let last = recorded_frames(&app, &run_id).await.last().unwrap().0;
    let beyond = last + 1;

    let by_header = open_sse(&app, &events_path(&run_id, ""), Some(&token), Some(beyond)).await;
    let problem = assert_problem(by_header, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "unknown_event_id");
    assert!(
        problem["detail"].as_str().unwrap().contains(&last.to_string()),
        "{problem}"
    );
    let by_query = open_sse(
        &app,
        &events_path(&run_id, &format!("after={beyond}")),
        Some(&token),
        None,
    )
    .await;
    let problem = assert_problem(by_query, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "unknown_event_id");
    let error = connect_ws(
        &app,
        &socket_path(&run_id, &format!("after={beyond}")),
        Some(&token),
        None,
    )
    .await
    .expect_err("refused before the upgrade");
    let (status, content_type, problem) = refusal(error);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(problem["code"], "unknown_event_id");

    let unknown_run = uuid::Uuid::now_v7();
    let problem = assert_problem(
        open_sse(
            &app,
            &events_path(&unknown_run.to_string(), ""),
            Some(&token),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(problem["code"], "run_not_found");
    let problem = assert_problem(
        open_sse(&app, &events_path(&run_id, ""), None, None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(problem["code"], "unauthorized");
    let (status, _, problem) = refusal(
        connect_ws(&app, &socket_path(&run_id, ""), None, None)
            .await
            .expect_err("no credentials"),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );

    let plain = app.with_bearer(&token).get(&socket_path(&run_id, "")).await;
    let problem = assert_problem(plain, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["code"], "websocket_upgrade_required");
    let garbled = app
        .with_bearer(&token)
        .request(reqwest::Method::GET, &events_path(&run_id, ""))
        .header("last-event-id", "seven")
        .send()
        .await
        .unwrap();
    assert_problem(garbled, StatusCode::BAD_REQUEST).await;
    app.cleanup().await;
}

/// Reads until `deltas` chunks of text have arrived (the model still streaming).
async fn read_some_sse(reader: &mut SseReader, deltas: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|frame: &&Value| frame["type"] == "message.delta")
        .count()
        < deltas
    {
        let message = reader.next().await.expect("more events before the end");
        frames.push(message.data);
    }
    frames
}

#[tokio::test]
async fn a_reader_resuming_mid_message_gets_every_later_event_once() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    let chunks: Vec<String> = (0..60).map(|n| format!("w{n} ")).collect();
    for _ in 0..2 {
        flow.llm
            .push(Reply::text(chunks.clone()).every(Duration::from_millis(25)));
    }
    let app = &flow.app;
    let token = flow.token.as_str();

    // SSE: read part of the answer, drop the connection, resume with Last-Event-ID.
    let (_, run_id) = flow.run(&agent, "Talk").await;
    let mut reader = SseReader::new(open_sse(app, &events_path(&run_id, ""), Some(token), None).await);
    let mut frames = read_some_sse(&mut reader, 10).await;
    drop(reader);
    let last_seen = frames.last().unwrap()["id"].as_u64().unwrap();
    let rest = SseReader::new(open_sse(app, &events_path(&run_id, ""), Some(token), Some(last_seen)).await)
        .read_to_end()
        .await;
    let rest = sse_frames(&rest);
    assert!(
        rest.iter().any(|frame| frame["type"] == "message.delta"),
        "resumed while the model was still streaming"
    );
    frames.extend(rest);
    let recorded = recorded_frames(app, &run_id).await;
    assert_consecutive(&recorded);
    assert_eq!(
        ids_and_types(&frames, &run_id),
        recorded,
        "SSE: every event once across the reconnect"
    );
    assert_eq!(streamed_text(&frames), chunks.concat());

    // WebSocket: the same with ?after=.
    let (_, run_id) = flow.run(&agent, "Talk again").await;
    let mut socket = expect_ws(app, &socket_path(&run_id, ""), token).await;
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|frame: &&Value| frame["type"] == "message.delta")
        .count()
        < 10
    {
        match next_ws(&mut socket).await {
            WsItem::Frame(frame) => frames.push(frame),
            other => panic!("the run ended early: {other:?}"),
        }
    }
    drop(socket);
    let last_seen = frames.last().unwrap()["id"].as_u64().unwrap();
    let mut socket = expect_ws(app, &socket_path(&run_id, &format!("after={last_seen}")), token).await;
    let (rest, code, _) = ws_to_close(&mut socket).await;
    assert!(rest.iter().any(|frame| frame["type"] == "message.delta"));
    assert_eq!(code, 1000);
    frames.extend(rest);
    let recorded = recorded_frames(app, &run_id).await;
    assert_consecutive(&recorded);
    assert_eq!(
        ids_and_types(&frames, &run_id),
        recorded,
        "WebSocket: every event once"
    );
    assert_eq!(streamed_text(&frames), chunks.concat());
    flow.cleanup().await;
}
