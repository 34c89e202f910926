//! The bench's LLM: an OpenAI-compatible streaming endpoint whose every chunk's text is the
//! moment the chunk was generated, `<microseconds since the UNIX epoch> `, so a subscriber
//! on the same machine reads a chunk's latency from the chunk itself.
//!
//! What it streams is the run's input (the last user message): `paced <chunks> <ms>` (a chunk
//! every `ms` milliseconds) or `burst <chunks>` (as fast as the connection takes them), then
//! optionally `run=<tag>`. Any other input gets a one-word answer. Before the first chunk it
//! waits for the tag's gate, which the bench opens once every subscriber of the run is
//! attached, so no chunk is streamed before its readers are there; without a gate it waits
//! [`UNGATED_DELAY`].
//!
//! It runs on its own thread and runtime, so the bench's thousands of subscriber tasks do
//! not delay its pace (the chunk's time is taken when it is generated either way), with
//! `TCP_NODELAY`, so a chunk is not held back by the server's reading of the one before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Response, Route, Server, handler, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::nodelay::NoDelay;
use crate::support::openai::{chunk, delta, ending};

/// How long a run's first chunk waits when the bench registered no gate for it.
pub const UNGATED_DELAY: Duration = Duration::from_millis(500);
/// How long a run's first chunk waits for its gate before streaming anyway.
const GATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Microseconds since the UNIX epoch, now.
pub fn now_micros() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// What one run's input asks the LLM to stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    /// Chunks of text before the end.
    pub chunks: u64,
    /// The pace; `None`: as fast as the connection takes them.
    pub every: Option<Duration>,
    /// The run's tag, for its gate.
    pub tag: Option<String>,
}

impl Script {
    /// `paced <chunks> <ms> [run=<tag>]` or `burst <chunks> [run=<tag>]`.
    pub fn parse(input: &str) -> Option<Self> {
        let mut words = input.split_whitespace();
        let (chunks, every) = match words.next()? {
            "paced" => {
                let chunks = words.next()?.parse().ok()?;
                let ms = words.next()?.parse().ok()?;
                (chunks, Some(Duration::from_millis(ms)))
            }
            "burst" => (words.next()?.parse().ok()?, None),
            _ => return None,
        };
        let tag = words
            .find_map(|word| word.strip_prefix("run="))
            .map(str::to_owned);
        Some(Self { chunks, every, tag })
    }

    /// The input that asks for this script.
    pub fn input(&self) -> String {
        let mut input = match self.every {
            Some(every) => format!("paced {} {}", self.chunks, every.as_millis()),
            None => format!("burst {}", self.chunks),
        };
        if let Some(tag) = &self.tag {
            input.push_str(&format!(" run={tag}"));
        }
        input
    }
}

/// The LLM's state: the runs' gates and what it generated.
#[derive(Default)]
pub struct Llm {
    gates: Mutex<HashMap<String, oneshot::Receiver<()>>>,
    chunks_sent: AtomicU64,
}

impl Llm {
    /// Registers `tag`'s gate: its first chunk waits until the answer is sent (or dropped).
    pub fn gate(&self, tag: &str) -> oneshot::Sender<()> {
        let (open, opened) = oneshot::channel();
        self.gates.lock().unwrap().insert(tag.to_owned(), opened);
        open
    }

    /// Chunks of text generated so far, every run together.
    pub fn chunks_sent(&self) -> u64 {
        self.chunks_sent.load(Ordering::Relaxed)
    }

    async fn wait_for_gate(&self, tag: Option<&str>) {
        let gate = tag.and_then(|tag| self.gates.lock().unwrap().remove(tag));
        match gate {
            Some(gate) => {
                if tokio::time::timeout(GATE_TIMEOUT, gate).await.is_err() {
                    eprintln!("llm: run {tag:?} was not released within {GATE_TIMEOUT:?}; streaming anyway");
                }
            }
            None => tokio::time::sleep(UNGATED_DELAY).await,
        }
    }
}

/// Starts the LLM on its own thread; answers its base URL (`http://127.0.0.1:<port>/v1`).
pub async fn start(llm: Arc<Llm>) -> String {
    let (port_sender, port) = oneshot::channel();
    std::thread::Builder::new()
        .name("bench-llm".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
                let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
                let acceptor = NoDelay(acceptor);
                port_sender.send(port).unwrap();
                let app = Route::new()
                    .at("/v1/chat/completions", post(chat_completions))
                    .data(llm);
                let _ = Server::new_with_acceptor(acceptor).run(app).await;
            });
        })
        .unwrap();
    format!("http://127.0.0.1:{}/v1", port.await.unwrap())
}

/// Where a streamed answer is.
enum Step {
    Chunk(u64),
    Done,
}

#[handler]
async fn chat_completions(llm: Data<&Arc<Llm>>, body: Body) -> Response {
    let request: Value = body.into_json().await.unwrap_or_default();
    let input = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|message| message["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default();
    let Some(script) = Script::parse(input) else {
        let answer = format!(
            "{}{}",
            chunk(delta(json!({ "role": "assistant", "content": "ok" })), None),
            ending("stop", 10, 1)
        );
        return Response::builder().content_type("text/event-stream").body(answer);
    };
    llm.wait_for_gate(script.tag.as_deref()).await;
    let pace = script.every.map(|every| {
        let mut pace = tokio::time::interval(every);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pace
    });
    let (llm, chunks) = (Arc::clone(&llm), script.chunks);
    let body = futures::stream::unfold((Step::Chunk(0), pace), move |(step, mut pace)| {
        let llm = Arc::clone(&llm);
        async move {
            match step {
                Step::Chunk(sent) if sent < chunks => {
                    if let Some(pace) = pace.as_mut() {
                        pace.tick().await;
                    }
                    // The time is taken as the chunk is made, just before it is written.
                    let text = format!("{} ", now_micros());
                    let content = if sent == 0 {
                        json!({ "role": "assistant", "content": text })
                    } else {
                        json!({ "content": text })
                    };
                    llm.chunks_sent.fetch_add(1, Ordering::Relaxed);
                    let bytes = Bytes::from(chunk(delta(content), None));
                    Some((Ok::<_, std::io::Error>(bytes), (Step::Chunk(sent + 1), pace)))
                }
                Step::Chunk(_) => {
                    let bytes = Bytes::from(ending("stop", 10, chunks));
                    Some((Ok(bytes), (Step::Done, pace)))
                }
                Step::Done => None,
            }
        }
    });
    Response::builder()
        .content_type("text/event-stream")
        .body(Body::from_bytes_stream(body))
}
