//! [`FakeLlm`]: an OpenAI-compatible provider for tests, as a real HTTP server.
//!
//! It serves `POST {base_url}/chat/completions` on 127.0.0.1 with a port of its own,
//! speaking the streaming chat-completions protocol (`data: {chunk}` server-sent events,
//! then `data: [DONE]`), and answers each request with the next [`Reply`] of its queue:
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use testkit::{FakeLlm, Reply};
//!
//! let llm = FakeLlm::start().await;
//! llm.push(Reply::error(429).with_retry_after("1"))          // first call: rate limited
//!     .push(Reply::tool_call("call_1", "weather", [r#"{"city":"#, r#""Oslo"}"#]))
//!     .push(Reply::words("It rains in Oslo.").every(Duration::from_millis(20)));
//! // … point the code under test at llm.base_url() with any API key …
//! assert_eq!(llm.request_count(), 3);
//! let asked = &llm.requests()[1];
//! assert_eq!(asked.authorization.as_deref(), Some("Bearer test-key"));
//! assert_eq!(asked.last_user_message(), Some("What is the weather in Oslo?"));
//! # }
//! ```
//!
//! With its queue empty it echoes the last user message word by word (or says `ok` when
//! there is none), so a test that only needs "a provider" pushes nothing. It records every
//! request (JSON body and `Authorization` header) and counts the streamed responses that
//! completed and those the client closed before they finished (a cancelled call), which
//! is how a test sees that dropping a stream really closed the connection.

mod reply;
mod sse;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::{HeaderMap, StatusCode, header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Response, Route, Server, handler, post};
use serde_json::Value;

pub use reply::Reply;
use reply::{Ending, Kind};

/// A fake OpenAI-compatible provider; stops serving when dropped.
pub struct FakeLlm {
    base_url: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The JSON body.
    pub body: Value,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
}

impl RecordedRequest {
    /// The `messages` of the body.
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The text of the last message with role `user`.
    pub fn last_user_message(&self) -> Option<&str> {
        self.messages()
            .iter()
            .rev()
            .find(|message| message["role"] == "user")
            .and_then(|message| message["content"].as_str())
    }
}

#[derive(Default)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    counters: Arc<Counters>,
}

/// What happened to the streamed responses.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    open: AtomicUsize,
    completed: AtomicUsize,
    closed_early: AtomicUsize,
}

impl FakeLlm {
    /// Starts the server on 127.0.0.1, on a free port.
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the fake LLM");
        let address = acceptor.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("a socket address");
        let state = Arc::new(State::default());
        let app = Route::new()
            .at("/v1/chat/completions", post(chat_completions))
            .data(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            base_url: format!("http://{address}/v1"),
            state,
            server,
        }
    }

    /// The base URL to configure as the provider's (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Queues `reply` for a coming request (replies are used in the order pushed).
    pub fn push(&self, reply: Reply) -> &Self {
        self.state.replies.lock().unwrap().push_back(reply);
        self
    }

    /// How many pushed replies are still waiting for a request.
    pub fn queued(&self) -> usize {
        self.state.replies.lock().unwrap().len()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// Streamed responses that sent their whole answer.
    pub fn completed(&self) -> usize {
        self.state.counters.completed.load(Ordering::SeqCst)
    }

    /// Streamed responses the client closed before they finished.
    pub fn closed_early(&self) -> usize {
        self.state.counters.closed_early.load(Ordering::SeqCst)
    }

    /// Streamed responses still being sent.
    pub fn open_streams(&self) -> usize {
        self.state.counters.open.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` responses were closed early by the client; false if that
    /// did not happen `within`.
    pub async fn wait_closed_early(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.closed_early() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[handler]
async fn chat_completions(state: Data<&Arc<State>>, headers: &HeaderMap, body: Body) -> Response {
    let Ok(body) = body.into_json::<Value>().await else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(r#"{"error": {"message": "the body is not JSON"}}"#);
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let number = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(RecordedRequest {
            body: body.clone(),
            authorization,
        });
        requests.len()
    };
    let reply = state.replies.lock().unwrap().pop_front();
    let reply = reply.unwrap_or_else(|| echo(&body));
    if !reply.after.is_zero() {
        tokio::time::sleep(reply.after).await;
    }
    match reply.kind {
        Kind::Error {
            status,
            retry_after,
            body,
        } => error_response(status, retry_after, body),
        Kind::Stream(script) => {
            let events = sse::events(&script, &body, &format!("chatcmpl-fake-{number}"));
            let watch = sse::CloseWatch::new(Arc::clone(&state.counters));
            let mut response = Response::builder()
                .content_type("text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache");
            if script.ending == Ending::Break {
                response = response.header(header::CONTENT_LENGTH, sse::BREAK_LENGTH);
            }
            let body = sse::body(events, reply.every, script.ending, watch);
            response.body(Body::from_bytes_stream(body))
        }
    }
}

/// The reply when nothing is queued: the last user message back, word by word.
fn echo(request: &Value) -> Reply {
    let recorded = RecordedRequest {
        body: request.clone(),
        authorization: None,
    };
    Reply::words(recorded.last_user_message().unwrap_or("ok"))
}

fn error_response(status: u16, retry_after: Option<String>, body: String) -> Response {
    let content_type = if serde_json::from_str::<Value>(&body).is_ok() {
        "application/json"
    } else {
        "text/plain"
    };
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type(content_type);
    if let Some(retry_after) = retry_after {
        response = response.header(header::RETRY_AFTER, retry_after);
    }
    response.body(body)
}
