//! Deciding over the WebSocket: approve, deny and cancel with the effect, the rules and the
//! audit record of the REST routes; every message answered (`ack` or `error` with the REST
//! route's code), the socket open after a refusal.

use futures::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::support::{Socket, WsItem, connect_ws, expect_ws, next_ws, send_ws, socket_path, ws_to_close};
use crate::accounts::{add_member, event_metadata, expect_json, register};
use crate::helpers::TestApp;
use crate::runs::{run_reaching, start_run, waiting_call};

/// Reads frames until one `matches`; answers the frames before it and that one.
async fn until(socket: &mut Socket, matches: impl Fn(&Value) -> bool) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        match next_ws(socket).await {
            WsItem::Frame(frame) if matches(&frame) => return (before, frame),
            WsItem::Frame(frame) => before.push(frame),
            other => panic!("the socket ended before the expected frame: {other:?} after {before:?}"),
        }
    }
}

/// The next answer to a client message (an `ack` or an `error`), skipping the run's events.
async fn answer(socket: &mut Socket) -> Value {
    until(socket, |frame| frame["type"] == "ack" || frame["type"] == "error")
        .await
        .1
}

/// `/tool send_mail` calls need approval; the run's call, once requested.
async fn call_requested(socket: &mut Socket) -> String {
    let (_, requested) = until(socket, |frame| frame["type"] == "tool_call.requested").await;
    requested["data"]["call"]["call_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn approving_and_denying_over_the_socket_are_the_rest_routes_decisions() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "socket-approver").await;
    let token = owner.access_token.as_str();
    let (conversation_id, run_id, call_id) = waiting_call(&app, token, "bob").await;

    let request_id = "socket-decisions-1";
    let mut socket = connect_ws(&app, &socket_path(&run_id, ""), Some(token), Some(request_id))
        .await
        .unwrap();
    assert_eq!(call_requested(&mut socket).await, call_id);

    // Anything that is not a client message: an error frame, and the socket stays open.
    for invalid in [
        "hello".to_owned(),
        json!({"type": "approve"}).to_string(),
        json!({"type": "subscribe"}).to_string(),
    ] {
        socket.send(Message::Text(invalid.clone().into())).await.unwrap();
        let error = answer(&mut socket).await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some("invalid_message")),
            "{invalid}: {error}"
        );
        assert_eq!(error["status"], 400);
    }
    socket.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(answer(&mut socket).await["code"], "invalid_message");

    // The REST route's rules and codes: bound to the exact pending call.
    send_ws(
        &mut socket,
        &json!({"type": "approve", "call_id": uuid::Uuid::now_v7()}),
    )
    .await;
    let unknown = answer(&mut socket).await;
    assert_eq!(
        (unknown["code"].as_str(), unknown["status"].as_u64()),
        (Some("tool_call_not_found"), Some(404)),
        "{unknown}"
    );
    assert_eq!(unknown["request"], "approve");

    send_ws(&mut socket, &json!({"type": "approve", "call_id": call_id})).await;
    let ack = answer(&mut socket).await;
    assert_eq!(
        ack,
        json!({"type": "ack", "request": "approve", "call_id": call_id})
    );
    send_ws(&mut socket, &json!({"type": "approve", "call_id": call_id})).await;
    let again = answer(&mut socket).await;
    assert_eq!(
        (again["code"].as_str(), again["status"].as_u64()),
        (Some("tool_call_not_pending"), Some(409)),
        "{again}"
    );

    let (rest, code, reason) = ws_to_close(&mut socket).await;
    assert!(rest.iter().any(|frame| frame["type"] == "tool_call.approved"
        || frame["type"] == "tool_call.completed"
        || frame["type"] == "run.completed"));
    assert_eq!((code, reason.as_str()), (1000, "run_ended"));
    let done = run_reaching(&app, token, &run_id, "completed").await;
    let call = &done["steps"][0]["tool_calls"][0];
    assert_eq!(call["approval"], "approved", "{done}");
    assert_eq!(call["decided_by"], format!("user:{}", owner.user_id), "{done}");
    let approved = event_metadata(&app, "tool_call.approved").await;
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(
        approved[0]["actor"],
        format!("user:{}", owner.user_id),
        "{approved:?}"
    );
    assert_eq!(
        approved[0]["request_id"], request_id,
        "the connection's request id: {approved:?}"
    );

    // A denial, its reason told to the model.
    let denied_run = start_run(&app, token, &conversation_id, r#"/tool send_mail {"to": "eve"}"#).await;
    run_reaching(&app, token, &denied_run, "awaiting_approval").await;
    let mut socket = connect_ws(
        &app,
        &socket_path(&denied_run, ""),
        Some(token),
        Some("socket-decisions-2"),
    )
    .await
    .unwrap();
    let denied_call = call_requested(&mut socket).await;
    send_ws(
        &mut socket,
        &json!({"type": "deny", "call_id": denied_call, "reason": "bell\u{7}"}),
    )
    .await;
    assert_eq!(answer(&mut socket).await["code"], "control_characters");
    send_ws(
        &mut socket,
        &json!({"type": "deny", "call_id": denied_call, "reason": "not to eve"}),
    )
    .await;
    assert_eq!(
        answer(&mut socket).await,
        json!({"type": "ack", "request": "deny", "call_id": denied_call})
    );
    let (_, code, _) = ws_to_close(&mut socket).await;
    assert_eq!(code, 1000);
    let done = run_reaching(&app, token, &denied_run, "completed").await;
    assert_eq!(done["output"], "denied: not to eve", "{done}");
    let denied = event_metadata(&app, "tool_call.denied").await;
    assert_eq!(denied[0]["request_id"], "socket-decisions-2", "{denied:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn cancelling_over_the_socket_ends_the_run_and_then_the_stream() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "socket-canceller").await;
    let token = owner.access_token.as_str();
    let (_, run_id, _) = waiting_call(&app, token, "bob").await;

    let mut socket = expect_ws(&app, &socket_path(&run_id, ""), token).await;
    call_requested(&mut socket).await;
    send_ws(&mut socket, &json!({"type": "cancel"})).await;
    let (events, ack) = until(&mut socket, |frame| frame["type"] == "ack").await;
    assert_eq!(ack, json!({"type": "ack", "request": "cancel"}));
    let (rest, code, reason) = ws_to_close(&mut socket).await;
    let last = events.iter().chain(&rest).last().unwrap().clone();
    assert_eq!(last["type"], "run.cancelled", "{last}");
    assert_eq!(last["data"]["by"], format!("user:{}", owner.user_id), "{last}");
    assert_eq!((code, reason.as_str()), (1000, "run_ended"));
    run_reaching(&app, token, &run_id, "cancelled").await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_auditor_may_watch_a_run_but_not_decide_on_it() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "socket-owner").await;
    let auditor = add_member(&app, &owner, "socket-auditor", "auditor").await;
    let (_, run_id, call_id) = waiting_call(&app, &owner.access_token, "bob").await;

    let mut socket = expect_ws(&app, &socket_path(&run_id, ""), &auditor.access_token).await;
    call_requested(&mut socket).await;
    for message in [
        json!({"type": "approve", "call_id": call_id}),
        json!({"type": "cancel"}),
    ] {
        send_ws(&mut socket, &message).await;
        let refused = answer(&mut socket).await;
        assert_eq!(
            (refused["code"].as_str(), refused["status"].as_u64()),
            (Some("role_not_allowed"), Some(403)),
            "{refused}"
        );
    }
    let run = expect_json(
        app.with_bearer(&owner.access_token)
            .get(&format!("/v1/runs/{run_id}"))
            .await,
        StatusCode::OK,
        "the run",
    )
    .await;
    assert_eq!(run["status"], "awaiting_approval", "nothing decided: {run}");

    // The auditor's socket stayed open: it sees the owner's decision and the run to its end.
    let approve = app
        .with_bearer(&owner.access_token)
        .post_json(
            &format!("/v1/runs/{run_id}/tool-calls/{call_id}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(approve.status(), StatusCode::ACCEPTED);
    let (rest, code, _) = ws_to_close(&mut socket).await;
    assert!(
        rest.iter().any(|frame| frame["type"] == "tool_call.approved"),
        "{rest:?}"
    );
    assert_eq!(rest.last().unwrap()["type"], "run.completed");
    assert_eq!(code, 1000);
    app.cleanup().await;
}
