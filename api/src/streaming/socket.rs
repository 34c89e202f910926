//! `GET /v1/runs/{id}/ws`: the run's events as WebSocket text frames (the same JSON as SSE's
//! `data:` lines), and the client's decisions on the run ([`super::client_messages`]).
//!
//! The socket is configured small, for many idle connections: a 2 KiB read buffer (client
//! messages are small; at most 16 KiB each), frames written out as they are sent rather than
//! gathered in a 128 KiB buffer, and one frame in flight at a time. A client that reads slower
//! than the run streams falls behind its bounded queue of frames (the node's feed) and is
//! closed with 1013 and the id to resume after; the run and the other clients never wait.
//!
//! Closing: 1000 `run_ended` after the run's last event; 1013 `fell_behind`, 1008
//! `<credentials code>` or 1012 `server_shutdown`, each `; resume_after=<id>` and preceded by a
//! `stream.cut_off` text frame; no close frame to a client that went away (silent for two
//! heartbeats, or not taking a frame for as long).

use std::time::Duration;

use eventstore::store::MAX_EVENT_BYTES;
use futures::{SinkExt, StreamExt};
use poem::web::websocket::{
    BoxWebSocketUpgraded, CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream,
};
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponse, MetaResponses, Registry};
use streams::{RunStream, StreamItem};
use tokio::time::{Instant, timeout};
use uuid::Uuid;

use super::client_messages::answer;
use super::upkeep::Chore;
use super::{Ending, OpenStreamGauge, RUN_ENDED, Upkeep, count_ending};
use crate::http::RequestId;
use crate::routes::AppState;

/// Client messages are a few hundred bytes; the buffer grows for a larger one.
const READ_BUFFER_BYTES: usize = 2 * 1024;
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
pub struct SocketUpgrade(BoxWebSocketUpgraded);

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
        let session = SocketSession {
            state: state.clone(),
            request_id,
            run_id: stream.run_id(),
            silence_limit: state.config.streams.silence_limit(),
            stream,
            upkeep,
        };
        Self(
            socket
                .config(socket_config())
                .on_upgrade(move |socket| session.run(socket))
                .boxed(),
        )
    }
}

impl IntoResponse for SocketUpgrade {
    fn into_response(self) -> Response {
        self.0.into_response()
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
    state: AppState,
    request_id: RequestId,
    run_id: Uuid,
    silence_limit: Duration,
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
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                biased;
                chore = self.upkeep.due() => match chore {
                    Chore::Stop => return Close::Early(Ending::ServerShutdown),
                    Chore::CheckStanding => {
                        // Boxed, as the answers below: rare work whose futures would otherwise
                        // be part of every idle connection's task.
                        if let Err(ending) = Box::pin(self.upkeep.check_standing()).await {
                            return Close::Early(ending);
                        }
                    }
                    Chore::Heartbeat => {
                        if last_heard.elapsed() >= self.silence_limit
                            || !self.send(socket, Message::Ping(Vec::new())).await
                        {
                            return Close::Gone;
                        }
                    }
                },
                message = socket.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            let answer =
                                Box::pin(answer(&self.state, self.upkeep.caller(), self.run_id, &self.request_id, &text)).await;
                            if !self.send(socket, Message::Text(answer.frame)).await {
                                return Close::Gone;
                            }
                            if let Some(ending) = answer.ending {
                                return Close::Early(ending);
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
                        let text = String::from_utf8_lossy(&frame.json).into_owned();
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

    /// Sends `message`; `false` when the client did not take it within the silence limit (it
    /// stopped reading, or went away) or the connection failed.
    async fn send(&self, socket: &mut WebSocketStream, message: Message) -> bool {
        matches!(
            timeout(self.silence_limit, socket.send(message)).await,
            Ok(Ok(()))
        )
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
                tracing::debug!(run = %self.run_id, reason = ending.reason(), resume_after, "stream ended early");
                if !self.send(socket, Message::Text(ending.json(resume_after))).await {
                    return;
                }
                Some(Message::close_with(
                    ending.close_code(),
                    ending.close_reason(resume_after),
                ))
            }
        };
        if let Some(frame) = frame
            && !self.send(socket, frame).await
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
