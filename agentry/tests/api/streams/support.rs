//! Stream clients over real sockets, and what the store says a run's stream holds.
//!
//! SSE: reqwest's body read as it arrives, parsed by eventsource-stream (comment lines are
//! dropped, as `EventSource` does). WebSocket: tokio-tungstenite over a plain TCP connection,
//! whose receive buffer a test may shrink to play a client that stops reading.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{SinkExt, Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::helpers::TestApp;

/// How long a test waits for a stream to say something: generous, for two busy cores.
pub const WAIT: Duration = Duration::from_secs(20);

/// One SSE message: its `id:` field (none on a `stream.cut_off`) and its JSON.
#[derive(Clone, Debug)]
pub struct SseMessage {
    pub id: Option<u64>,
    pub data: Value,
}

type EventResults = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// An SSE response being read.
pub struct SseReader {
    events: EventResults,
}

/// `GET path` with `Authorization: Bearer token` (when given) and `Last-Event-ID` (when given).
pub async fn open_sse(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    last_event_id: Option<u64>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(path))
        .header("accept", "text/event-stream");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    // The test client's 30 s timeout covers the whole body; these bodies may last longer.
    request
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("SSE request")
}

impl SseReader {
    /// Reads `response`, which must be a 200 event stream.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK, "an event stream expected");
        let media_type = crate::helpers::media_type(&response);
        assert_eq!(media_type.as_deref(), Some("text/event-stream"));
        let cache = response.headers().get("cache-control").cloned();
        assert_eq!(
            cache.as_ref().and_then(|value| value.to_str().ok()),
            Some("no-cache")
        );
        Self {
            events: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    /// The next message; `None` when the response ended.
    pub async fn next(&mut self) -> Option<SseMessage> {
        let event = tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("an SSE message or the end within the wait")?;
        let event = event.expect("a readable SSE message");
        // No `event:` line, so the type is the default one `onmessage` receives.
        assert_eq!(event.event, "message", "{event:?}");
        let data = serde_json::from_str(&event.data).unwrap_or_else(|error| panic!("{error}: {event:?}"));
        let id = (!event.id.is_empty()).then(|| event.id.parse().expect("a numeric id"));
        Some(SseMessage { id, data })
    }

    /// Every message until the response ends.
    pub async fn read_to_end(mut self) -> Vec<SseMessage> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await {
            messages.push(message);
        }
        messages
    }
}

/// A WebSocket client's connection.
pub type Socket = WebSocketStream<TcpStream>;

/// `ws://…path` with `Authorization: Bearer token` when given, and `X-Request-Id` when given.
pub async fn connect_ws(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    request_id: Option<&str>,
) -> Result<Socket, tungstenite::Error> {
    let client = WsClient {
        token,
        request_id,
        ..WsClient::default()
    };
    client.connect(app, path).await
}

/// How a test's WebSocket client connects.
#[derive(Clone, Copy, Debug, Default)]
pub struct WsClient<'a> {
    /// `Authorization: Bearer <token>`.
    pub token: Option<&'a str>,
    /// `X-Request-Id`.
    pub request_id: Option<&'a str>,
    /// `Origin`, as a browser sends it for a page.
    pub origin: Option<&'a str>,
    /// The connection's receive buffer in bytes (the kernel may round it), for a client that
    /// stops reading.
    pub receive_buffer: Option<u32>,
}

impl WsClient<'_> {
    /// Opens `ws://…path`.
    pub async fn connect(&self, app: &TestApp, path: &str) -> Result<Socket, tungstenite::Error> {
        let address = app.address.trim_start_matches("http://").to_owned();
        let mut request = format!("ws://{address}{path}").into_client_request()?;
        let headers = request.headers_mut();
        if let Some(token) = self.token {
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if let Some(request_id) = self.request_id {
            headers.insert("x-request-id", request_id.parse().unwrap());
        }
        if let Some(origin) = self.origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        let socket = TcpSocket::new_v4()?;
        if let Some(size) = self.receive_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(address.parse().unwrap()).await?;
        let (socket, _) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(socket)
    }
}

/// A socket that must open.
pub async fn expect_ws(app: &TestApp, path: &str, token: &str) -> Socket {
    connect_ws(app, path, Some(token), None)
        .await
        .unwrap_or_else(|error| panic!("the WebSocket did not open: {}", describe(&error)))
}

/// The problem a refused upgrade answered: (status, content type, body).
pub fn refusal(error: tungstenite::Error) -> (StatusCode, Option<String>, Value) {
    let tungstenite::Error::Http(response) = error else {
        panic!("an HTTP refusal expected, got {error}");
    };
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.body().clone().unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn describe(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => format!(
            "{} {}",
            response.status(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        ),
        other => other.to_string(),
    }
}

/// What a socket says next.
#[derive(Debug)]
pub enum WsItem {
    /// A text frame's JSON.
    Frame(Value),
    /// The server's close frame: (code, reason).
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

/// The next text frame or the close (pings and pongs are skipped; tungstenite answers pings).
pub async fn next_ws(socket: &mut Socket) -> WsItem {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a WebSocket message within the wait");
        match message {
            Some(Ok(Message::Text(text))) => {
                return WsItem::Frame(
                    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}")),
                );
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((1005, String::new()), |CloseFrame { code, reason }| {
                    (u16::from(code), reason.to_string())
                });
                return WsItem::Closed(code, reason);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Binary(bytes))) => panic!("a binary frame: {bytes:?}"),
            None | Some(Err(_)) => return WsItem::Dropped,
        }
    }
}

/// Every text frame until the close, and the close (code, reason).
pub async fn ws_to_close(socket: &mut Socket) -> (Vec<Value>, u16, String) {
    let mut frames = Vec::new();
    loop {
        match next_ws(socket).await {
            WsItem::Frame(frame) => frames.push(frame),
            WsItem::Closed(code, reason) => return (frames, code, reason),
            WsItem::Dropped => panic!("the connection dropped without a close frame after {frames:?}"),
        }
    }
}

/// Sends `message` as a text frame.
pub async fn send_ws(socket: &mut Socket, message: &Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("sending a WebSocket message");
}

/// The frames the store records for run `run_id`: (id, type), one per `message.delta` chunk,
/// in id order.
pub async fn recorded_frames(app: &TestApp, run_id: &str) -> Vec<(u64, String)> {
    let events: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, payload::jsonb FROM events \
         WHERE aggregate_type = 'run' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(run_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut frames = Vec::new();
    for (kind, payload) in events {
        if kind == "message.delta" {
            let first = payload["first_id"].as_u64().unwrap();
            let chunks = payload["chunks"].as_array().unwrap().len() as u64;
            frames.extend((first..first + chunks).map(|id| (id, kind.clone())));
        } else {
            frames.push((payload["id"].as_u64().unwrap(), kind));
        }
    }
    frames
}

/// (id, type) of stream frames (`{id, type, run_id, data}`), checking each names `run_id`.
pub fn ids_and_types(frames: &[Value], run_id: &str) -> Vec<(u64, String)> {
    frames
        .iter()
        .map(|frame| {
            assert_eq!(frame["run_id"], run_id, "{frame}");
            assert!(frame["data"].is_object(), "{frame}");
            (
                frame["id"].as_u64().unwrap(),
                frame["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The JSON of SSE messages that carry an id (every event; not a cut-off).
pub fn sse_frames(messages: &[SseMessage]) -> Vec<Value> {
    messages
        .iter()
        .map(|message| {
            assert_eq!(
                message.id,
                message.data["id"].as_u64(),
                "the SSE id is the event's"
            );
            message.data.clone()
        })
        .collect()
}

/// The text of a run's `message.delta` frames, joined.
pub fn streamed_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|frame| frame["type"] == "message.delta")
        .map(|frame| frame["data"]["text"].as_str().unwrap())
        .collect()
}

/// The path of a run's SSE stream, with a query when given.
pub fn events_path(run_id: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/v1/runs/{run_id}/events")
    } else {
        format!("/v1/runs/{run_id}/events?{query}")
    }
}

/// The path of a run's WebSocket, with a query when given.
pub fn socket_path(run_id: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/v1/runs/{run_id}/ws")
    } else {
        format!("/v1/runs/{run_id}/ws?{query}")
    }
}
