//! `GET /v1/runs/{id}/ws`: the run's events as WebSocket text frames (the same JSON as SSE's
//! `data:` lines), and the client's decisions on the run ([`super::client_messages`]).
//!
//! The socket is configured small, for many idle connections: a 256-byte read buffer (client
//! messages are small; at most 16 KiB each, the buffer grows for a larger one), frames written
//! out as they are sent rather than gathered in a 128 KiB buffer, and one frame in flight at a
//! time. An idle session is one task (poem's, holding the session inline) and no timer: the
//! node's [`super::StreamWatch`] wakes it for heartbeats and endings. A client that reads
//! slower than the run streams falls behind its bounded queue of frames (the node's feed) and
//! is closed with 1013 and the id to resume after; the run and the other clients never wait.
//!
//! Closing: 1000 `run_ended` after the run's last event; 1013 `fell_behind`, 1008
//! `<credentials code>` or 1012 `server_shutdown`, each `; resume_after=<id>` and preceded by a
//! `stream.cut_off` text frame; no close frame to a client that went away (silent for two
//! heartbeats, or not taking a frame for as long).

use std::pin::pin;
use std::time::Duration;

use eventstore::store::MAX_EVENT_BYTES;
use futures::{FutureExt, SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponse, MetaResponses, Registry};
use streams::{RunStream, StreamItem};
use tokio::time::timeout;

use super::client_messages::{Decisions, answer};
use super::{Chore, Ending, OpenStreamGauge, RUN_ENDED, Upkeep, count_ending};
use crate::http::RequestId;
use crate::routes::AppState;

/// Client messages are a few hundred bytes; the buffer grows for a larger one. Every read
/// attempt zero-fills it, and an idle socket keeps it.
const READ_BUFFER_BYTES: usize = 256;
/// The largest client message (a denial's reason is at most 500 characters).
const MAX_CLIENT_MESSAGE_BYTES: usize = 16 * 1024;
/// How long a closing client may take to answer our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The socket's limits (DESIGN-NOTES §4: tungstenite's defaults are a 128 KiB read buffer, an
/// unbounded write buffer and 64 MiB messages).
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        // Frames go out one at a time, each awaited; the bound only has to admit the largest
        // event the store records, with its JSON envelope.
        .max_write_buffer_size(2 * MAX_EVENT_BYTES)
        .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES))
}

/// The WebSocket route's answer: 101 and the session.
///
/// The session is handed to poem's upgrade only when the response is made, so that the task
/// poem spawns for the connection holds the session's future itself (a boxed upgrade would
/// hold it in an allocation of its own).
pub struct SocketUpgrade {
    socket: WebSocket,
    session: SocketSession,
}

impl SocketUpgrade {
    /// Upgrades `socket` to a session streaming `stream` (already open, so that an unknown run
    /// or id was answered as a problem before the upgrade).
    pub fn new(
        socket: WebSocket,
        state: &AppState,
        request_id: RequestId,
        stream: RunStream,
        upkeep: Upkeep,
    ) -> Self {
        Self {
            socket,
            session: SocketSession {
                decisions: Decisions::of(state),
                request_id,
                stream,
                upkeep,
            },
        }
    }
}

impl IntoResponse for SocketUpgrade {
    fn into_response(self) -> Response {
        let Self { socket, session } = self;
        socket
            .config(socket_config())
            .on_upgrade(move |socket| session.run(socket))
            .into_response()
    }
}

impl ApiResponse for SocketUpgrade {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Switching Protocols: the WebSocket carrying the run's events as \
                              text frames (each event's JSON, `data` of `RunStreamMessage`).",
                status: Some(101),
                status_range: None,
                content: vec![],
                headers: vec![],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

/// How a session ends.
enum Close {
    /// After the run's last event: 1000.
    RunEnded,
    /// Before it: the ending's code, after a `stream.cut_off` frame.
    Early(Ending),
    /// The client closed.
    ByClient,
    /// The client went away (the connection failed, it stayed silent, or it left a frame
    /// untaken): nothing more can be sent.
    Gone,
}

/// One client's socket on one run.
struct SocketSession {
    decisions: Decisions,
    request_id: RequestId,
    stream: RunStream,
    upkeep: Upkeep,
}

impl SocketSession {
    async fn run(mut self, mut socket: WebSocketStream) {
        let _open = OpenStreamGauge::new("websocket");
        let close = self.serve(&mut socket).await;
        Box::pin(self.close(&mut socket, close)).await;
    }

    /// Sends the run's events and heartbeats and answers the client until one of them ends.
    async fn serve(&mut self, socket: &mut WebSocketStream) -> Close {
        loop {
            tokio::select! {
                biased;
                chore = self.upkeep.due() => match chore {
                    Chore::Heartbeat => {
                        if !self.send(socket, Message::Ping(Vec::new())).await {
                            return Close::Gone;
                        }
                    }
                    Chore::End(ending) => return Close::Early(ending),
                    Chore::Gone => return Close::Gone,
                },
                message = socket.next() => {
                    self.upkeep.heard();
                    match message {
                        // Boxed: rare work whose future would otherwise be part of every idle
                        // connection's task.
                        Some(Ok(Message::Text(text))) => {
                            if let Some(close) = Box::pin(self.answer(socket, &text)).await {
                                return close;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            if !self.send(socket, Message::Text(binary_refused())).await {
                                return Close::Gone;
                            }
                        }
                        // tungstenite answers pings itself; a pong only shows the client is there.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) => return Close::ByClient,
                        None | Some(Err(_)) => return Close::Gone,
                    }
                },
                item = self.stream.next() => match item {
                    StreamItem::Frame(frame) => {
                        // Each socket sends its own copy (poem's message owns its text).
                        let text = String::from_utf8(frame.json.to_vec())
                            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
                        if !self.send(socket, Message::Text(text)).await {
                            return Close::Gone;
                        }
                    }
                    StreamItem::Ended => return Close::RunEnded,
                    StreamItem::CutOff { .. } => return Close::Early(Ending::FellBehind),
                },
            }
        }
    }

    /// Does what the client's message asks and answers it; how the session ends, if it does.
    async fn answer(&self, socket: &mut WebSocketStream, text: &str) -> Option<Close> {
        let answer = answer(
            &self.decisions,
            self.upkeep.caller(),
            self.stream.run_id(),
            &self.request_id,
            text,
        )
        .await;
        if !self.send(socket, Message::Text(answer.frame)).await {
            return Some(Close::Gone);
        }
        answer.ending.map(Close::Early)
    }

    /// Sends `message`; `false` when the connection failed, or the client did not take it
    /// within the silence limit (it stopped reading, or went away), or the node stops
    /// meanwhile. A send the socket takes at once costs no timer.
    async fn send(&self, socket: &mut WebSocketStream, message: Message) -> bool {
        let mut sending = pin!(socket.send(message));
        if let Some(sent) = sending.as_mut().now_or_never() {
            return sent.is_ok();
        }
        let _stuck = self.upkeep.stuck();
        loop {
            tokio::select! {
                biased;
                sent = sending.as_mut() => return sent.is_ok(),
                chore = self.upkeep.due() => match chore {
                    // No ping behind a frame the client does not take.
                    Chore::Heartbeat => {}
                    Chore::End(_) | Chore::Gone => return false,
                },
            }
        }
    }

    /// Says why the session ends (when the client can still hear it) and lets the client
    /// answer the close frame briefly before the connection is dropped.
    async fn close(&self, socket: &mut WebSocketStream, close: Close) {
        let resume_after = self.stream.last_id();
        let frame = match close {
            Close::Gone => return,
            Close::ByClient => None,
            Close::RunEnded => Some(Message::close_with(CloseCode::Normal, RUN_ENDED)),
            Close::Early(ending) => {
                count_ending("websocket", &ending);
                tracing::debug!(run = %self.stream.run_id(), reason = ending.reason(), resume_after, "stream ended early");
                if !self
                    .send_closing(socket, Message::Text(ending.json(resume_after)))
                    .await
                {
                    return;
                }
                Some(Message::close_with(
                    ending.close_code(),
                    ending.close_reason(resume_after),
                ))
            }
        };
        if let Some(frame) = frame
            && !self.send_closing(socket, frame).await
        {
            return;
        }
        // Flushes our close frame (or the reply to the client's) and reads until the client's
        // answer, so the connection closes cleanly on both sides.
        let _ = timeout(CLOSE_WAIT, async {
            let _ = socket.flush().await;
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }

    /// Sends one of the last messages: the stream's ending is due by now (so [`Self::send`]
    /// would give up at once); the client gets the silence limit to take it.
    async fn send_closing(&self, socket: &mut WebSocketStream, message: Message) -> bool {
        let limit = self.upkeep.silence_limit();
        matches!(timeout(limit, socket.send(message)).await, Ok(Ok(())))
    }
}

/// The answer to a binary message: the protocol is JSON text.
fn binary_refused() -> String {
    serde_json::json!({
        "type": "error",
        "status": 400,
        "code": "invalid_message",
        "detail": "binary messages are not accepted; send JSON text messages",
    })
    .to_string()
}
