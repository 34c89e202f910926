//! A real tool server for the tests: a small poem server on 127.0.0.1:0 that records every
//! request, checks its signature with its own HMAC code, and answers by path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream;
use hmac::{Hmac, KeyInit, Mac};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Request, Response, Route, Server, handler};
use runtime::tools::{ToolEndpoint, ToolInvoker, ToolInvokerSettings, ToolRequest};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

/// The secret the tool server shares with the endpoints the tests build.
pub const SECRET: &str = "whsec_test_5f2b8c0e9d";

/// The body `/fail` answers with: a long error page.
pub fn failure_page() -> String {
    format!("database exploded: {}", "stack frame; ".repeat(2_000))
}

/// One request as the tool server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub method: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the server's own check of `Agentry-Signature` found.
    pub signature: Verdict,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The HMAC matches; the timestamp is this many seconds old.
    Valid {
        age_seconds: i64,
    },
    Invalid(String),
}

struct State {
    base: String,
    requests: Mutex<Vec<Recorded>>,
}

pub struct ToolServer {
    pub port: u16,
    state: Arc<State>,
}

impl ToolServer {
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let state = Arc::new(State {
            base: format!("http://127.0.0.1:{port}"),
            requests: Mutex::new(Vec::new()),
        });
        let app = Route::new().at("/*path", tool).data(Arc::clone(&state));
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self { port, state }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.state.base)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .map(|recorded| recorded.path)
            .collect()
    }
}

#[handler]
async fn tool(request: &Request, body: Vec<u8>, state: Data<&Arc<State>>) -> Response {
    let path = request.uri().path().to_owned();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect();
    let signature = verify(headers.get("agentry-signature").map(String::as_str), &body);
    state.requests.lock().unwrap().push(Recorded {
        path: path.clone(),
        method: request.method().to_string(),
        headers,
        body: body.clone(),
        signature,
    });
    answer(&path, &body, &state.base).await
}

async fn answer(path: &str, body: &[u8], base: &str) -> Response {
    match path {
        "/echo" => {
            let arguments: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            Response::builder()
                .content_type("application/json")
                .body(json!({ "received": arguments }).to_string())
        }
        "/text" => Response::builder()
            .content_type("text/plain")
            .body("sunny, 21 degrees (this is not JSON)"),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Response::builder().body("too late")
        }
        "/trickle" => {
            // Headers at once, then a byte every 100 ms, for ever.
            let bytes = stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, std::io::Error>(vec![b'.']), ()))
            });
            Response::builder().body(Body::from_bytes_stream(bytes))
        }
        "/fail" => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .content_type("text/plain")
            .body(failure_page()),
        "/endless" => {
            // Chunked, no length announced, never ends: only a bounded reader gets past it.
            let bytes = stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b'x'; 8 * 1024]));
            Response::builder().body(Body::from_bytes_stream(bytes))
        }
        "/large" => Response::builder().body(vec![b'x'; 300 * 1024]),
        "/exact-1024" => Response::builder().body(vec![b'y'; 1024]),
        "/exact-1025" => Response::builder().body(vec![b'y'; 1025]),
        "/redirect" => Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("Location", format!("{base}/echo"))
            .finish(),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body("no such tool"),
    }
}

/// The tool author's check, written here independently of the runtime's signing code.
fn verify(header: Option<&str>, body: &[u8]) -> Verdict {
    let Some(header) = header else {
        return Verdict::Invalid("no signature header".into());
    };
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => tag = decode_hex(value),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return Verdict::Invalid(format!("malformed header {header:?}"));
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    match mac.verify_slice(&tag) {
        Ok(()) => Verdict::Valid {
            age_seconds: chrono::Utc::now().timestamp() - timestamp,
        },
        Err(_) => Verdict::Invalid("HMAC mismatch".into()),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

pub fn invoker(allow_private_networks: bool) -> ToolInvoker {
    invoker_with_limit(allow_private_networks, runtime::tools::DEFAULT_MAX_RESPONSE_BYTES)
}

pub fn invoker_with_limit(allow_private_networks: bool, max_response_bytes: usize) -> ToolInvoker {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ToolInvoker::new(ToolInvokerSettings {
        allow_private_networks,
        max_response_bytes,
    })
    .unwrap()
}

pub fn endpoint(url: &str) -> ToolEndpoint {
    endpoint_with(url, SECRET, Duration::from_secs(5))
}

pub fn endpoint_with(url: &str, secret: &str, timeout: Duration) -> ToolEndpoint {
    ToolEndpoint {
        url: url.to_owned(),
        secret: SecretString::from(secret),
        timeout,
    }
}

pub fn request() -> ToolRequest {
    ToolRequest {
        run_id: Uuid::now_v7(),
        tool: "get_weather".into(),
        idempotency_key: format!("run-{}-step-3-call-0", Uuid::now_v7()),
        arguments: json!({ "city": "Paris", "units": "metric", "days": [1, 2] }),
    }
}
