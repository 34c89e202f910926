//! Streams that end before their run, each telling the client the id to resume after: a client
//! that reads too slowly, credentials that lost their standing, a node shutting down; and a
//! client that went away, whose connection is dropped.

use std::time::{Duration, Instant};

use api::streaming::StreamTimings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streams::FeedLimits;
use testkit::Reply;

use super::support::{
    Socket, SseMessage, SseReader, WsClient, WsItem, events_path, expect_ws, ids_and_types, next_ws,
    open_sse, recorded_frames, socket_path, sse_frames, streamed_text, ws_to_close,
};
use crate::accounts::{add_member, create_api_key, platform_admin, register};
use crate::admin::suspend;
use crate::helpers::TestApp;
use crate::run_flows::support::Flow;
use crate::runs::waiting_call;

/// Within how long a change of standing must end a stream: the documented bound (checked
/// every 4 s, answers shared for 1 s), and a second for two busy cores.
const STANDING_BOUND: Duration = Duration::from_secs(6);

/// SSE messages up to and including the run's `tool_call.requested`.
async fn sse_until_requested(reader: &mut SseReader) -> Vec<SseMessage> {
    let mut messages = Vec::new();
    loop {
        let message = reader.next().await.expect("events up to the call");
        let requested = message.data["type"] == "tool_call.requested";
        messages.push(message);
        if requested {
            return messages;
        }
    }
}

/// WebSocket frames up to and including the run's `tool_call.requested`.
async fn ws_until_requested(socket: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        match next_ws(socket).await {
            WsItem::Frame(frame) => {
                let requested = frame["type"] == "tool_call.requested";
                frames.push(frame);
                if requested {
                    return frames;
                }
            }
            other => panic!("the socket ended early: {other:?}"),
        }
    }
}

/// The `stream.cut_off` an SSE stream ends with, after no more events.
async fn sse_cut_off(mut reader: SseReader) -> Value {
    let last = reader.next().await.expect("a last message");
    assert_eq!(last.data["type"], "stream.cut_off", "{:?}", last.data);
    // Without an `id:` line of its own, the client's last event id stays the last event's.
    assert_eq!(last.id, last.data["resume_after"].as_u64(), "{:?}", last.data);
    assert!(reader.next().await.is_none(), "the response ends after it");
    last.data
}

#[tokio::test]
async fn a_revoked_key_and_a_removed_member_end_their_streams_within_the_bound() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "standing-owner").await;
    let member = add_member(&app, &owner, "standing-member", "member").await;
    let key = create_api_key(&app, &owner.access_token, "dashboard").await;
    let (_, run_id, _) = waiting_call(&app, &owner.access_token, "bob").await;

    let mut key_sse = SseReader::new(open_sse(&app, &events_path(&run_id, ""), Some(&key.key), None).await);
    let seen = sse_until_requested(&mut key_sse).await;
    let last_id = seen.last().unwrap().id.unwrap();
    let mut key_ws = expect_ws(&app, &socket_path(&run_id, ""), &key.key).await;
    ws_until_requested(&mut key_ws).await;
    let mut member_sse =
        SseReader::new(open_sse(&app, &events_path(&run_id, ""), Some(&member.access_token), None).await);
    sse_until_requested(&mut member_sse).await;

    let revoked = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let removed = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/members/{}", member.user_id))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let changed = Instant::now();

    let cut_off = sse_cut_off(key_sse).await;
    assert_eq!(
        cut_off,
        json!({
            "type": "stream.cut_off",
            "reason": "credentials",
            "code": "api_key_revoked",
            "detail": cut_off["detail"],
            "resume_after": last_id,
        })
    );
    let (frames, code, reason) = ws_to_close(&mut key_ws).await;
    assert_eq!(frames.len(), 1, "only the cut-off: {frames:?}");
    assert_eq!(frames[0]["code"], "api_key_revoked");
    assert_eq!(
        (code, reason),
        (1008, format!("api_key_revoked; resume_after={last_id}"))
    );
    let cut_off = sse_cut_off(member_sse).await;
    assert_eq!(cut_off["code"], "membership_ended", "{cut_off}");
    let took = changed.elapsed();
    assert!(
        took < STANDING_BOUND,
        "the streams ended {took:?} after the change"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_suspended_organizations_streams_end_within_the_bound_and_another_organizations_go_on() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "stream-admin").await;
    let suspended = register(&app, "suspended-owner").await;
    let other = register(&app, "other-owner").await;
    let key = create_api_key(&app, &suspended.access_token, "dashboard").await;
    let (_, run_id, _) = waiting_call(&app, &suspended.access_token, "bob").await;
    let (_, other_run_id, _) = waiting_call(&app, &other.access_token, "bob").await;

    // Both organizations' streams read up to their waiting call: the allowed path works.
    let mut token_sse = SseReader::new(
        open_sse(
            &app,
            &events_path(&run_id, ""),
            Some(&suspended.access_token),
            None,
        )
        .await,
    );
    let seen = sse_until_requested(&mut token_sse).await;
    let last_id = seen.last().unwrap().id.unwrap();
    let mut key_ws = expect_ws(&app, &socket_path(&run_id, ""), &key.key).await;
    ws_until_requested(&mut key_ws).await;
    let mut other_ws = expect_ws(&app, &socket_path(&other_run_id, ""), &other.access_token).await;
    ws_until_requested(&mut other_ws).await;

    let response = suspend(&app, &admin.access_token, suspended.org_id, "unpaid-invoices").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let changed = Instant::now();

    let cut_off = sse_cut_off(token_sse).await;
    assert_eq!(cut_off["reason"], "credentials", "{cut_off}");
    assert_eq!(cut_off["code"], "organization_suspended", "{cut_off}");
    assert_eq!(cut_off["resume_after"], last_id, "{cut_off}");
    let (frames, code, reason) = ws_to_close(&mut key_ws).await;
    assert_eq!(frames.len(), 1, "only the cut-off: {frames:?}");
    assert_eq!(
        (code, reason),
        (1008, format!("organization_suspended; resume_after={last_id}"))
    );
    let took = changed.elapsed();
    assert!(
        took < STANDING_BOUND,
        "the streams ended {took:?} after the suspension"
    );
    // A full standing round later, the other organization's stream is still open and live: it
    // carries its run's cancel, then closes normally.
    tokio::time::sleep(STANDING_BOUND.saturating_sub(took)).await;
    let cancelled = app
        .with_bearer(&other.access_token)
        .post_json(&format!("/v1/runs/{other_run_id}/cancel"), &json!({}))
        .await;
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    let (frames, code, _) = ws_to_close(&mut other_ws).await;
    assert_eq!(code, 1000, "{frames:?}");
    assert_eq!(frames.last().unwrap()["type"], "run.cancelled", "{frames:?}");
    app.cleanup().await;
}

// Two workers: the server, its projectors and the three clients share the test's runtime,
// and folding 6 MB of text in a debug build keeps one thread busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_the_others_are_not_and_it_resumes_without_loss() {
    // Each reader may fall 256 frames behind the node's feed. The slow client reads nothing
    // until the run has ended, which on a busy machine takes longer than the default silence
    // limit (30 s) after which a client that takes nothing is dropped without a close: this
    // test is about falling behind, so the heartbeat (and that limit) is made long.
    let flow = Flow::start_with(|settings| {
        settings.runs.stream_feed = FeedLimits {
            reader_queue: 256,
            ..FeedLimits::default()
        };
        settings.http.streams = StreamTimings {
            heartbeat: Duration::from_secs(120),
            ..StreamTimings::default()
        };
    })
    .await;
    let agent = flow.agent(&[], json!("never")).await;
    // 6 MB of text: more than the kernel buffers between the server and a client that stops
    // reading (its send buffer grows to 4 MiB), so the server must hold frames back.
    let chunks: Vec<String> = (0..1_500)
        .map(|n| format!("{n:05}{} ", "x".repeat(4_000)))
        .collect();
    flow.llm
        .push(Reply::text(chunks.clone()).every(Duration::from_millis(1)));
    let (app, token) = (&flow.app, flow.token.as_str());
    let (_, run_id) = flow.run(&agent, "Flood").await;

    // A client with a small receive buffer that reads nothing while the run streams.
    let slow_client = WsClient {
        token: Some(token),
        receive_buffer: Some(4_096),
        ..WsClient::default()
    };
    let mut slow = slow_client.connect(app, &socket_path(&run_id, "")).await.unwrap();
    let fast_ws = {
        let mut socket = expect_ws(app, &socket_path(&run_id, ""), token).await;
        tokio::spawn(async move { ws_to_close(&mut socket).await })
    };
    let fast_sse = {
        let reader = SseReader::new(open_sse(app, &events_path(&run_id, ""), Some(token), None).await);
        tokio::spawn(reader.read_to_end())
    };
    // The fast clients' streams end after the run's last event. (Polling the run meanwhile
    // would make the server serialize its megabytes of text over and over.)
    let (frames, code, reason) = fast_ws.await.unwrap();
    assert_eq!(flow.get_run(&run_id).await["status"], "completed");
    let recorded = recorded_frames(app, &run_id).await;

    assert_eq!(
        ids_and_types(&frames, &run_id),
        recorded,
        "a client that keeps up gets everything"
    );
    assert_eq!(code, 1000);
    let messages = fast_sse.await.unwrap();
    assert_eq!(ids_and_types(&sse_frames(&messages), &run_id), recorded);
    let _ = reason;

    // The slow client reads what was sent before it fell behind, then why it was cut off.
    let (mut frames, code, reason) = ws_to_close(&mut slow).await;
    let cut_off = frames.pop().expect("a cut-off frame");
    let resume_after = frames.last().map_or(0, |frame| frame["id"].as_u64().unwrap());
    assert_eq!(
        (cut_off["type"].as_str(), cut_off["id"].as_u64()),
        (Some("stream.cut_off"), None),
        "the slow client was not cut off ({} frames)",
        frames.len() + 1
    );
    assert_eq!(
        cut_off,
        json!({"type": "stream.cut_off", "reason": "fell_behind", "resume_after": resume_after})
    );
    assert_eq!(
        (code, reason),
        (1013, format!("fell_behind; resume_after={resume_after}"))
    );
    assert!(
        (resume_after as usize) < recorded.len(),
        "cut off before the end ({resume_after} of {})",
        recorded.len()
    );
    let mut resumed = expect_ws(
        app,
        &socket_path(&run_id, &format!("after={resume_after}")),
        token,
    )
    .await;
    let (rest, code, _) = ws_to_close(&mut resumed).await;
    assert_eq!(code, 1000);
    frames.extend(rest);
    assert_eq!(
        ids_and_types(&frames, &run_id),
        recorded,
        "after resuming, every event once"
    );
    assert_eq!(streamed_text(&frames), chunks.concat());
    flow.cleanup().await;
}

#[tokio::test]
async fn heartbeats_keep_a_listening_client_and_a_silent_one_is_dropped() {
    let timings = StreamTimings {
        heartbeat: Duration::from_millis(200),
        ..StreamTimings::default()
    };
    let app = TestApp::spawn_with(|settings| settings.http.streams = timings).await;
    let token = register(&app, "heartbeats").await.access_token;
    let (_, run_id, _) = waiting_call(&app, &token, "bob").await;

    let mut listening = expect_ws(&app, &socket_path(&run_id, ""), &token).await;
    let mut silent = expect_ws(&app, &socket_path(&run_id, ""), &token).await;
    let sse = open_sse(&app, &events_path(&run_id, ""), Some(&token), None).await;
    let mut body = sse.bytes_stream();

    // Reading (and so answering pings) for ten heartbeats keeps the socket open.
    let until = tokio::time::Instant::now() + timings.heartbeat * 10;
    let mut pings = 0;
    let mut sse_bytes = Vec::new();
    while tokio::time::Instant::now() < until {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        tokio::select! {
            message = listening.next() => match message {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Text(_))) => {}
                other => panic!("the listening socket ended: {other:?}"),
            },
            chunk = body.next() => sse_bytes.extend_from_slice(&chunk.expect("the SSE stream is open").unwrap()),
            () = tokio::time::sleep_until(until) => {}
        }
    }
    assert!(pings >= 5, "pings every heartbeat: {pings}");
    let sse_text = String::from_utf8(sse_bytes).unwrap();
    assert!(
        sse_text.matches(": ping\n\n").count() >= 5,
        "SSE comment heartbeats: {sse_text}"
    );

    // The socket that answered nothing for two heartbeats was dropped, without a close frame.
    loop {
        match next_ws(&mut silent).await {
            WsItem::Frame(_) => {}
            WsItem::Dropped => break,
            WsItem::Closed(code, reason) => panic!("a close frame to a silent client: {code} {reason}"),
        }
    }

    // Clients that go away are noticed and their streams freed: a socket at once (its
    // connection reads the end), an SSE response when a heartbeat finds no one to take it.
    // (Each test runs in a process of its own, so the gauges are this test's.)
    drop((listening, body));
    let deadline = tokio::time::Instant::now() + timings.heartbeat * 10;
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let open: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("agentry_stream_connections{"))
            .collect();
        if open.iter().all(|line| line.ends_with(" 0")) && open.len() == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "streams still open: {open:?}"
        );
        tokio::time::sleep(timings.heartbeat / 2).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_shutting_down_node_ends_its_streams_with_the_id_to_resume_after() {
    let app = TestApp::spawn().await;
    let token = register(&app, "shutdown").await.access_token;
    let (_, run_id, _) = waiting_call(&app, &token, "bob").await;
    let mut sse = SseReader::new(open_sse(&app, &events_path(&run_id, ""), Some(&token), None).await);
    let last_id = sse_until_requested(&mut sse).await.last().unwrap().id.unwrap();
    let mut socket = expect_ws(&app, &socket_path(&run_id, ""), &token).await;
    ws_until_requested(&mut socket).await;

    let started = Instant::now();
    let stopping = tokio::spawn(app.cleanup());
    let cut_off = sse_cut_off(sse).await;
    assert_eq!(
        cut_off,
        json!({"type": "stream.cut_off", "reason": "server_shutdown", "resume_after": last_id})
    );
    let (frames, code, reason) = ws_to_close(&mut socket).await;
    assert_eq!(frames[0]["reason"], "server_shutdown");
    assert_eq!(
        (code, reason),
        (1012, format!("server_shutdown; resume_after={last_id}"))
    );
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "open streams do not hold the drain: {:?}",
        started.elapsed()
    );
}
