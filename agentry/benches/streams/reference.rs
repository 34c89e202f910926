//! The raw reference, measured in the same run as Agentry: a bare relay doing only what a node
//! must do on the hot path. It reads the same LLM stream (reqwest, one JSON parse per chunk),
//! makes one frame per chunk in the same JSON shape, serialized once, and broadcasts it to every
//! WebSocket reader of the run through the same web stack (poem's WebSocket over tungstenite
//! 0.27), with the same slow-reader rule (more than 1,024 frames behind: close 1013). No store,
//! no authentication, no ordering or repair, no heartbeats, no executor.
//!
//! Agentry's figures over these say what everything else costs, in a ratio that survives the
//! machine's drift. It runs as this bench binary started again with [`LISTEN_VAR`] set, so its
//! CPU time and memory are counted apart, as Agentry's are.
//!
//! Routes: `GET /readyz`; `POST /runs {input}` → `{run_id}` (input `idle`: a run that never
//! streams; anything else is sent to the LLM as the user's message); `GET /runs/{id}/ws?after=`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use poem::listener::TcpListener;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig};
use poem::web::{Data, Json, Path, Query};
use poem::{EndpointExt, IntoResponse, Response, Route, Server, get, handler, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

/// Set to `127.0.0.1:<port>`, the bench binary serves as the reference instead.
pub const LISTEN_VAR: &str = "BENCH_STREAMS_REFERENCE_LISTEN";
/// The LLM's base URL, for the reference role.
pub const LLM_VAR: &str = "BENCH_STREAMS_REFERENCE_LLM";

/// How far a reader may fall behind before it is cut off (Agentry's rule, docs/streams.md).
const READER_LAG_LIMIT: usize = 1024;
/// How long an ended run's frames stay for late readers.
const ENDED_RUN_KEPT: Duration = Duration::from_secs(30);

/// The WebSocket settings of Agentry's route (`api/src/streaming/socket.rs`): a 2 KiB read
/// buffer (tungstenite's default is 128 KiB, DESIGN-NOTES §4), each frame written out as it is
/// sent, client messages of at most 16 KiB.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(16 * 1024))
        .max_frame_size(Some(16 * 1024))
}

/// Serves as the reference relay when [`LISTEN_VAR`] is set; answers whether it did (it then
/// serves until killed).
pub fn serve_if_asked() -> bool {
    let Ok(listen) = std::env::var(LISTEN_VAR) else {
        return false;
    };
    let llm_url = std::env::var(LLM_VAR).expect("the reference needs the LLM's URL");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let relay = Arc::new(Relay {
            runs: Mutex::default(),
            http: reqwest::Client::new(),
            llm_url,
        });
        let app = Route::new()
            .at("/readyz", get(ready))
            .at("/runs", post(start_run))
            .at("/runs/:run_id/ws", get(subscribe))
            .data(relay);
        // Nagle's algorithm stays on, as on Agentry's listener (poem's default).
        Server::new(TcpListener::bind(listen)).run(app).await.unwrap();
    });
    true
}

struct Relay {
    runs: Mutex<HashMap<Uuid, Arc<RunFeed>>>,
    http: reqwest::Client,
    llm_url: String,
}

/// One frame, serialized once.
struct Frame {
    id: u64,
    json: String,
    terminal: bool,
}

/// A run's frames so far and its live broadcast.
struct RunFeed {
    run_id: Uuid,
    state: Mutex<FeedState>,
}

struct FeedState {
    frames: Vec<Arc<Frame>>,
    live: broadcast::Sender<Arc<Frame>>,
}

impl RunFeed {
    fn publish(&self, event_type: &str, data: &Value, terminal: bool) {
        let mut state = self.state.lock().unwrap();
        let id = state.frames.len() as u64 + 1;
        let json = json!({ "id": id, "type": event_type, "run_id": self.run_id, "data": data }).to_string();
        let frame = Arc::new(Frame { id, json, terminal });
        state.frames.push(Arc::clone(&frame));
        let _ = state.live.send(frame);
    }
}

#[handler]
fn ready() -> &'static str {
    "ready"
}

#[derive(Deserialize)]
struct StartRun {
    input: String,
}

#[handler]
fn start_run(relay: Data<&Arc<Relay>>, body: Json<StartRun>) -> Json<Value> {
    let run_id = Uuid::now_v7();
    let feed = Arc::new(RunFeed {
        run_id,
        state: Mutex::new(FeedState {
            frames: Vec::new(),
            live: broadcast::channel(READER_LAG_LIMIT).0,
        }),
    });
    feed.publish("run.started", &json!({ "executor": "reference" }), false);
    relay.runs.lock().unwrap().insert(run_id, Arc::clone(&feed));
    if body.input != "idle" {
        let relay = Arc::clone(&relay);
        let input = body.0.input;
        tokio::spawn(async move {
            if let Err(error) = relay_answer(&relay, &feed, &input).await {
                eprintln!("reference: run {run_id}: {error}");
            }
            feed.publish("run.completed", &json!({ "output": "" }), true);
            tokio::time::sleep(ENDED_RUN_KEPT).await;
            relay.runs.lock().unwrap().remove(&run_id);
        });
    }
    Json(json!({ "run_id": run_id }))
}

/// Streams the LLM's answer to `input` into the run's feed, one frame per chunk of text.
async fn relay_answer(relay: &Relay, feed: &RunFeed, input: &str) -> Result<(), String> {
    let request = json!({
        "model": "bench", "stream": true,
        "messages": [{ "role": "user", "content": input }],
    });
    let response = relay
        .http
        .post(format!("{}/chat/completions", relay.llm_url))
        .json(&request)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(bytes) = body.next().await {
        pending.extend_from_slice(&bytes.map_err(|error| error.to_string())?);
        // Every whole event in what arrived, then what is left kept for the next read.
        let mut start = 0;
        while let Some(length) = pending[start..].windows(2).position(|pair| pair == b"\n\n") {
            let event = &pending[start..start + length];
            start += length + 2;
            let Some(data) = event.strip_prefix(b"data: ") else {
                continue;
            };
            if data == b"[DONE]" {
                return Ok(());
            }
            let chunk: Value = serde_json::from_slice(data).map_err(|error| error.to_string())?;
            if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str()
                && !text.is_empty()
            {
                feed.publish("message.delta", &json!({ "step": 1, "text": text }), false);
            }
        }
        pending.drain(..start);
    }
    Ok(())
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

#[handler]
fn subscribe(
    relay: Data<&Arc<Relay>>,
    Path(run_id): Path<Uuid>,
    Query(after): Query<After>,
    websocket: WebSocket,
) -> Response {
    let Some(feed) = relay.runs.lock().unwrap().get(&run_id).cloned() else {
        return poem::http::StatusCode::NOT_FOUND.into_response();
    };
    let after = after.after.unwrap_or(0);
    websocket
        .config(websocket_config())
        .on_upgrade(move |socket| serve_reader(feed, after, socket))
        .into_response()
}

/// Sends a reader the run's frames after `after`, then the live ones, until the run ends, the
/// reader falls too far behind or goes away.
async fn serve_reader(feed: Arc<RunFeed>, after: u64, socket: poem::web::websocket::WebSocketStream) {
    let (backlog, mut live) = {
        let state = feed.state.lock().unwrap();
        let skip = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(state.frames.len());
        (state.frames[skip..].to_vec(), state.live.subscribe())
    };
    let (mut sink, mut from_client) = socket.split();
    let mut last = after;
    for frame in backlog {
        last = frame.id;
        if sink.send(Message::Text(frame.json.clone())).await.is_err() {
            return;
        }
        if frame.terminal {
            let _ = sink
                .send(Message::close_with(CloseCode::Normal, "run_ended"))
                .await;
            return;
        }
    }
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(frame) if frame.id <= last => {}
                Ok(frame) => {
                    last = frame.id;
                    if sink.send(Message::Text(frame.json.clone())).await.is_err() {
                        return;
                    }
                    if frame.terminal {
                        let _ = sink.send(Message::close_with(CloseCode::Normal, "run_ended")).await;
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let reason = format!("fell_behind; resume_after={last}");
                    let _ = sink.send(Message::close_with(CloseCode::Again, reason)).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            message = from_client.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
