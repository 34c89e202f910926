//! [`ToolServer`]: an organization's HTTP tool, as a real server on 127.0.0.1 started by the
//! test. It records every request, checks `Agentry-Signature` with its own HMAC code (the
//! scheme of docs/tools.md) against the secret the test gives it for a path, and answers by
//! path:
//!
//! - `/slow/<ms>/…`: waits `<ms>` milliseconds, then answers as below;
//! - `/trickle/<ms>/…`: answers 200 at once, then sends its body a space every 50 ms for `<ms>`
//!   milliseconds before the JSON (writing all along, it notices a client that went away);
//! - `/status/<code>/…`: answers `<code>` with `{"error": "failed on purpose"}`;
//! - anything else: 200 `{"path": …, "received": <the arguments>}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use poem::http::{HeaderMap, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Request, Response, Server, handler};
use serde_json::{Value, json};
use sha2::Sha256;

/// How far a signature's timestamp may be from this server's clock (docs/tools.md: 5 minutes).
const TOLERANCE_SECONDS: u64 = 300;

/// A tool server; stops serving when dropped.
pub struct ToolServer {
    address: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

/// One request as the tool server received it.
#[derive(Clone, Debug)]
pub struct ToolRequest {
    pub path: String,
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Vec<u8>,
    /// Whether `Agentry-Signature` verified with the path's secret; `None` when the test gave
    /// no secret for the path.
    pub signature_valid: Option<bool>,
}

impl ToolRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the tool's body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<ToolRequest>>,
    secrets: Mutex<HashMap<String, String>>,
    answered: AtomicUsize,
    abandoned: AtomicUsize,
}

impl ToolServer {
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the tool server");
        let address = acceptor.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("a socket address");
        let state = Arc::new(State::default());
        let app = serve.data(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            address: format!("http://{address}"),
            state,
            server,
        }
    }

    /// The URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Requests to `path` must be signed with `secret`; others are answered 401.
    pub fn expect_secret(&self, path: &str, secret: &str) {
        self.state
            .secrets
            .lock()
            .unwrap()
            .insert(path.to_owned(), secret.to_owned());
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<ToolRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// Requests answered in full.
    pub fn answered(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }

    /// Requests whose client went away before the answer (the handler was dropped).
    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// Waits until `count` requests arrived; false if not `within`.
    pub async fn wait_requests(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.request_count() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Counts the request as abandoned unless it was answered before being dropped.
struct Answering {
    state: Arc<State>,
    answered: bool,
}

impl Answering {
    fn finish(&mut self) {
        self.answered = true;
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let counter = if self.answered {
            &self.state.answered
        } else {
            &self.state.abandoned
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[handler]
async fn serve(state: Data<&Arc<State>>, request: &Request, body: Body) -> Response {
    let mut answering = Answering {
        state: Arc::clone(&state),
        answered: false,
    };
    let path = request.uri().path().to_owned();
    let body = body.into_vec().await.unwrap_or_default();
    let secret = state.secrets.lock().unwrap().get(&path).cloned();
    let signature_valid = secret.map(|secret| {
        let header = request
            .headers()
            .get("agentry-signature")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        verify(secret.as_bytes(), header, &body)
    });
    state.requests.lock().unwrap().push(ToolRequest {
        path: path.clone(),
        headers: request.headers().clone(),
        body: body.clone(),
        signature_valid,
    });
    if let (Some(ms), true) = (millis_after(&path, "trickle"), signature_valid != Some(false)) {
        return trickle(ms, answering, &path, &body);
    }
    let response = answer(&path, signature_valid, &body).await;
    answering.answered = true;
    response
}

/// The number after `/<prefix>/` in `path`.
fn millis_after(path: &str, prefix: &str) -> Option<u64> {
    let mut segments = path.trim_start_matches('/').split('/');
    (segments.next() == Some(prefix))
        .then(|| segments.next()?.parse().ok())
        .flatten()
}

/// 200 at once, then a space every 50 ms for `ms`, then the JSON; `answering` is marked
/// answered when the last byte is handed over, and counts as abandoned if the body is
/// dropped first (the client closed the connection).
fn trickle(ms: u64, mut answering: Answering, path: &str, body: &[u8]) -> Response {
    let received: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let last = json!({"path": path, "received": received}).to_string();
    let spaces = ms / 50;
    let stream = futures::stream::unfold(0u64, move |sent| {
        let last = last.clone();
        async move {
            if sent > spaces {
                return None;
            }
            if sent == spaces {
                return Some((Ok::<_, std::io::Error>(bytes::Bytes::from(last)), sent + 1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok(bytes::Bytes::from_static(b" ")), sent + 1))
        }
    });
    let guarded = futures::StreamExt::chain(
        stream,
        // A method call captures the whole guard, which then lives as long as the body.
        futures::stream::poll_fn(move |_| {
            answering.finish();
            std::task::Poll::Ready(None)
        }),
    );
    Response::builder()
        .content_type("application/json")
        .body(Body::from_bytes_stream(guarded))
}

async fn answer(path: &str, signature_valid: Option<bool>, body: &[u8]) -> Response {
    if signature_valid == Some(false) {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "bad signature"}));
    }
    let mut segments = path.trim_start_matches('/').split('/');
    match (
        segments.next(),
        segments.next().and_then(|n| n.parse::<u64>().ok()),
    ) {
        (Some("slow"), Some(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
        (Some("status"), Some(code)) => {
            let status = StatusCode::from_u16(code as u16).unwrap();
            return json_response(status, &json!({"error": "failed on purpose"}));
        }
        _ => {}
    }
    let received: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    json_response(StatusCode::OK, &json!({"path": path, "received": received}))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// docs/tools.md's check: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the
/// timestamp within 5 minutes, any `v1` matching in constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    verify_at(secret, header, body, now)
}

/// [`verify`] with the clock at `now` (unix seconds).
fn verify_at(secret: &[u8], header: &str, body: &[u8], now: u64) -> bool {
    let parts: Vec<(&str, &str)> = header
        .split(',')
        .filter_map(|part| part.split_once('='))
        .collect();
    let timestamps: Vec<&str> = parts.iter().filter(|(k, _)| *k == "t").map(|(_, v)| *v).collect();
    let [timestamp] = timestamps.as_slice() else {
        return false;
    };
    let Ok(seconds) = timestamp.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(seconds) > TOLERANCE_SECONDS {
        return false;
    }
    parts
        .iter()
        .filter(|(key, _)| *key == "v1")
        .filter_map(|(_, value)| hex_decode(value))
        .any(|tag| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&tag).is_ok()
        })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[test]
fn verify_accepts_the_documented_example_only_within_its_tolerance() {
    // docs/tools.md's example request, signed with `whsec_example` at t=1767225600.
    let header = "t=1767225600,v1=10f40158d732d4739300667b7c2b84759006f93a024c374d71533ca301754dc2";
    let body = br#"{"city":"Paris","units":"metric"}"#;
    assert!(verify_at(b"whsec_example", header, body, 1_767_225_600 + 299));
    assert!(
        !verify_at(b"whsec_example", header, body, 1_767_225_600 + 301),
        "too old"
    );
    assert!(!verify_at(b"whsec_other", header, body, 1_767_225_600));
    // A fresh one made with the runtime's own signer is accepted, and refused with another
    // secret or body.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let secret = secrecy::SecretString::from("whsec_example");
    let fresh = runtime::tools::signature_header(&secret, now, b"{}");
    assert!(verify(b"whsec_example", &fresh, b"{}"));
    assert!(!verify(b"whsec_other", &fresh, b"{}"));
    assert!(!verify(b"whsec_example", &fresh, b"{ }"));
}
