//! The instant LLM and the instant tool server, both recording when each request of a run
//! arrived and when its answer left, on one [`Timeline`].
//!
//! A run is known by its tag: the user's input, which the LLM sees as the first user message
//! and puts into the tool call's arguments, which is the tool request's body. The LLM answers
//! a conversation whose last message is not a tool result with one call of `lookup`, and one
//! whose last message is a tool result with a short text: 3 steps (model, tool, model).
//! `testkit::FakeLlm` answers from one queue shared by every request and keeps no times, so
//! concurrent runs with their own script need this one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Response, Route, Server, handler, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::support::openai::{chunk, delta, ending};

/// When things happened to each run, as the servers saw them.
#[derive(Default)]
pub struct Timeline {
    runs: Mutex<HashMap<String, RunTimes>>,
    /// Told when the run's last LLM answer has left (the run is about to end).
    answered: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

/// The servers' times of one run.
#[derive(Clone, Debug, Default)]
pub struct RunTimes {
    /// When each LLM request arrived (headers read).
    pub llm_requests: Vec<DateTime<Utc>>,
    /// When each LLM answer's last byte was handed to the connection.
    pub llm_last_bytes: Vec<DateTime<Utc>>,
    /// When each tool request arrived.
    pub tool_requests: Vec<DateTime<Utc>>,
    /// When each tool answer was handed over.
    pub tool_answers: Vec<DateTime<Utc>>,
}

impl Timeline {
    /// Registers `tag`; the receiver hears when its final answer has been sent.
    pub fn expect(&self, tag: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.answered.lock().unwrap().insert(tag.to_owned(), sender);
        receiver
    }

    /// The times of `tag`, forgotten here.
    pub fn take(&self, tag: &str) -> RunTimes {
        self.runs.lock().unwrap().remove(tag).unwrap_or_default()
    }

    fn record(&self, tag: &str, change: impl FnOnce(&mut RunTimes)) {
        change(self.runs.lock().unwrap().entry(tag.to_owned()).or_default());
    }

    fn final_answer_sent(&self, tag: &str) {
        if let Some(sender) = self.answered.lock().unwrap().remove(tag) {
            let _ = sender.send(());
        }
    }
}

/// Serves `app` on 127.0.0.1, on a free port; answers the port.
async fn spawn(app: impl poem::Endpoint + 'static) -> u16 {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    port
}

/// Starts the LLM; answers its base URL (`http://127.0.0.1:<port>/v1`).
pub async fn start_llm(timeline: Arc<Timeline>) -> String {
    let app = Route::new()
        .at("/v1/chat/completions", post(chat_completions))
        .data(timeline);
    format!("http://127.0.0.1:{}/v1", spawn(app).await)
}

/// Starts the tool server; answers the tool's URL.
pub async fn start_tool(timeline: Arc<Timeline>) -> String {
    let app = Route::new().at("/lookup", post(lookup)).data(timeline);
    format!("http://127.0.0.1:{}/lookup", spawn(app).await)
}

#[handler]
async fn chat_completions(timeline: Data<&Arc<Timeline>>, body: Body) -> Response {
    let arrived = Utc::now();
    let request: Value = body.into_json().await.unwrap();
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let tag = messages
        .iter()
        .find(|message| message["role"] == "user")
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let after_tool = messages.last().is_some_and(|message| message["role"] == "tool");
    timeline.record(&tag, |times| times.llm_requests.push(arrived));
    let answer = if after_tool {
        text_answer("It is 21 degrees.")
    } else {
        tool_call_answer(&json!({ "run": tag }).to_string())
    };
    // The whole answer in one write, then the end of the body: the moment the body is asked
    // for more after its only chunk is when its last byte was handed to the connection.
    let timeline = Arc::clone(&timeline);
    let chunks = futures::stream::unfold(Some(answer), move |answer| {
        let (timeline, tag) = (Arc::clone(&timeline), tag.clone());
        async move {
            if let Some(answer) = answer {
                return Some((Ok::<_, std::io::Error>(Bytes::from(answer)), None));
            }
            timeline.record(&tag, |times| times.llm_last_bytes.push(Utc::now()));
            if after_tool {
                timeline.final_answer_sent(&tag);
            }
            None
        }
    });
    Response::builder()
        .content_type("text/event-stream")
        .body(Body::from_bytes_stream(chunks))
}

#[handler]
async fn lookup(timeline: Data<&Arc<Timeline>>, body: Body) -> Response {
    let arrived = Utc::now();
    let arguments: Value = body.into_json().await.unwrap();
    let tag = arguments["run"].as_str().unwrap_or_default().to_owned();
    timeline.record(&tag, |times| times.tool_requests.push(arrived));
    let response = Response::builder()
        .content_type("application/json")
        .body(r#"{"city":"Oslo","temperature":21}"#);
    timeline.record(&tag, |times| times.tool_answers.push(Utc::now()));
    response
}

fn text_answer(text: &str) -> String {
    format!(
        "{}{}{}",
        chunk(delta(json!({ "role": "assistant", "content": "" })), None),
        chunk(delta(json!({ "content": text })), None),
        ending("stop", 40, 8)
    )
}

fn tool_call_answer(arguments: &str) -> String {
    let call = json!({ "tool_calls": [{
        "index": 0, "id": "call_1", "type": "function",
        "function": { "name": "lookup", "arguments": arguments },
    }]});
    format!(
        "{}{}{}",
        chunk(delta(json!({ "role": "assistant", "content": "" })), None),
        chunk(delta(call), None),
        ending("tool_calls", 40, 8)
    )
}
