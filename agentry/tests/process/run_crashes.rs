//! Runs survive crashes of real `agentry` processes and are executed by one worker at a time.
//!
//! A node killed (SIGKILL) during a model stream or a tool call is restarted on the same
//! database and finishes the run; each step is once in the event log, the stream ids never
//! repeat, and the tool server saw the call's idempotency key twice at most. With NATS, two
//! processes share the runs queue: one executes a run, and when it is killed or frozen the
//! other takes the run over within the bound the design states and finishes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, Server, handler, post};
use runtime::executor::RUNS_STREAM;
use serde_json::{Value, json};
use testkit::{FakeLlm, PrivateNats, Reply};
use uuid::Uuid;

use crate::node::{Node, database_url, drop_database, install_crypto_provider, register};

/// The bound the design states for another worker to resume a run whose worker died: the runs
/// queue's ack wait (6 s) after the last progress ack (every 2 s), plus a loaded machine.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);
/// How long a restarted node may take to resume what was unfinished once it is ready.
const RESUME_BOUND: Duration = Duration::from_secs(10);
/// How long a run may take to finish once resumed.
pub(crate) const FINISH_BOUND: Duration = Duration::from_secs(30);
/// How often the slow answer sends a chunk.
const CHUNK_EVERY: Duration = Duration::from_millis(100);

/// A slow answer: `chunks` chunks `slow0 slow1 …`, one every [`CHUNK_EVERY`]; the word `slow`
/// tells its text apart from the answer the run is finished with.
fn slow_answer(chunks: usize) -> Reply {
    Reply::text((0..chunks).map(|n| format!("slow{n} "))).every(CHUNK_EVERY)
}

/// The answer the resumed run gets.
pub(crate) const FINAL_ANSWER: &str = "Taken over and finished.";

pub(crate) fn node_env(
    database: &str,
    llm: &FakeLlm,
    nats: Option<&PrivateNats>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", database_url(database)),
        ("AGENTRY_LLM_BASE_URL", llm.base_url().to_owned()),
        ("AGENTRY_LLM_API_KEY", "test-key".to_owned()),
        ("AGENTRY_TOOLS_ALLOW_PRIVATE_NETWORKS", "true".to_owned()),
    ];
    if let Some(nats) = nats {
        env.push(("NATS_URL", nats.url()));
    }
    env
}

async fn post_json(client: &reqwest::Client, token: &str, url: &str, body: &Value, expected: u16) -> Value {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, expected, "POST {url}: {answer}");
    answer
}

/// Registers an account, creates `tool` (a name and a URL) when given, an agent using it, a
/// conversation, and starts a run; answers the run id and the account's access token.
pub(crate) async fn start_run(node: &Node, tool: Option<(&str, &str)>) -> (Uuid, String) {
    let conversation = new_conversation(node, tool, "never").await;
    (conversation.start_run().await, conversation.token.clone())
}

/// A conversation of a fresh account, ready to take runs.
pub(crate) struct Conversation {
    client: reqwest::Client,
    token: String,
    runs_url: String,
}

impl Conversation {
    /// Starts a run (202); answers its id.
    pub(crate) async fn start_run(&self) -> Uuid {
        let input = json!({ "input": "What is the weather in Oslo?" });
        let queued = post_json(&self.client, &self.token, &self.runs_url, &input, 202).await;
        queued["run_id"].as_str().unwrap().parse().unwrap()
    }

    /// Denies a call awaiting approval (202).
    pub(crate) async fn deny(&self, node: &Node, run_id: Uuid, call_id: &str) {
        let url = node.url(&format!("/v1/runs/{run_id}/tool-calls/{call_id}/deny"));
        let reason = json!({ "reason": "not now" });
        post_json(&self.client, &self.token, &url, &reason, 202).await;
    }
}

/// Registers an account, creates `tool` (a name and a URL) when given, an agent using it whose
/// calls need `approval` (`never`, `always`), and a conversation.
pub(crate) async fn new_conversation(
    node: &Node,
    tool: Option<(&str, &str)>,
    approval: &str,
) -> Conversation {
    let client = reqwest::Client::new();
    let account = register(&client, &node.url(""), 0).await.expect("registered");
    let token = account["access_token"].as_str().unwrap().to_owned();
    let mut tools = Vec::new();
    if let Some((name, url)) = tool {
        let body = json!({
            "name": name,
            "description": "Looks up the weather, slowly.",
            "parameters": {
                "type": "object",
                "properties": { "city": { "type": "string" } },
                "required": ["city"]
            },
            "url": url,
            "timeout_ms": 60_000,
        });
        post_json(&client, &token, &node.url("/v1/tools"), &body, 201).await;
        tools.push(name);
    }
    let agent = json!({
        "name": "Crash test",
        "model": "fake-model",
        "tools": tools,
        "approval": approval,
        "max_steps": 5,
    });
    let agent = post_json(&client, &token, &node.url("/v1/agents"), &agent, 201).await;
    let conversation = json!({ "agent_id": agent["id"], "title": "Crashes" });
    let conversation = post_json(
        &client,
        &token,
        &node.url("/v1/conversations"),
        &conversation,
        201,
    )
    .await;
    let path = format!("/v1/conversations/{}/runs", conversation["id"].as_str().unwrap());
    Conversation {
        client,
        token,
        runs_url: node.url(&path),
    }
}

/// The run's events in order: (type, payload).
pub(crate) async fn run_events(pool: &sqlx::PgPool, run_id: Uuid) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, payload::text FROM events
          WHERE aggregate_type = 'run' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(run_id.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(event_type, payload)| (event_type, serde_json::from_str(&payload).unwrap()))
        .collect()
}

pub(crate) fn of_type<'a>(events: &'a [(String, Value)], event_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(kind, _)| kind == event_type)
        .map(|(_, payload)| payload)
        .collect()
}

/// Polls the run's events every 50 ms until `done` says so; panics after `within`.
pub(crate) async fn wait_events(
    pool: &sqlx::PgPool,
    run_id: Uuid,
    within: Duration,
    what: &str,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let started = Instant::now();
    loop {
        let events = run_events(pool, run_id).await;
        if done(&events) {
            return events;
        }
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}; the run's events: {:#?}",
            events.iter().map(|(kind, _)| kind).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events in short, for failure messages: type, step, executor, chunks.
pub(crate) fn summary(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(kind, payload)| {
            let mut line = kind.clone();
            for field in ["step", "executor", "discarded_step", "attempt"] {
                if let Some(value) = payload.get(field) {
                    line.push_str(&format!(" {field}={value}"));
                }
            }
            if let Some(chunks) = payload.get("chunks") {
                line.push_str(&format!(" chunks={chunks}"));
            }
            line
        })
        .collect()
}

pub(crate) fn has(event_type: &'static str) -> impl Fn(&[(String, Value)]) -> bool {
    move |events| events.iter().any(|(kind, _)| kind == event_type)
}

/// Every stream id the events take, in the order recorded.
fn stream_ids(events: &[(String, Value)]) -> Vec<u64> {
    let mut ids = Vec::new();
    for (kind, payload) in events {
        if kind == "message.delta" {
            let first = payload["first_id"].as_u64().unwrap();
            let chunks = payload["chunks"].as_array().unwrap().len() as u64;
            ids.extend(first..first + chunks);
        } else {
            ids.push(
                payload["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{kind} has no id: {payload}")),
            );
        }
    }
    ids
}

/// The checks every crashed run passes once completed: it completed once and nothing came
/// after; each of `steps` model steps completed once, with one message; ids never repeat.
fn assert_recorded_once(events: &[(String, Value)], steps: u64) {
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(of_type(events, "run.completed").len(), 1, "{kinds:?}");
    assert_eq!(
        kinds.last(),
        Some(&"run.completed"),
        "nothing after the end: {kinds:?}"
    );
    assert_eq!(of_type(events, "run.started").len(), 1, "{kinds:?}");
    for event_type in ["llm_call.completed", "message.completed"] {
        let mut by_step: HashMap<u64, usize> = HashMap::new();
        for payload in of_type(events, event_type) {
            *by_step.entry(payload["step"].as_u64().unwrap()).or_default() += 1;
        }
        let expected: HashMap<u64, usize> = (1..=steps).map(|step| (step, 1)).collect();
        assert_eq!(by_step, expected, "{event_type} once per step: {kinds:?}");
    }
    let ids = stream_ids(events);
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "stream ids increase and never repeat: {ids:?}"
    );
}

/// The one `run.resumed`, checked to discard the step that was streaming when its executor
/// stopped (`discarded`), and skipping the ids that one may have sent live.
fn the_resumption(events: &[(String, Value)], discarded: Option<u64>) -> Value {
    let resumed = of_type(events, "run.resumed");
    assert_eq!(resumed.len(), 1, "resumed once: {resumed:?}");
    let resumed = resumed[0].clone();
    assert_eq!(resumed["discarded_step"].as_u64(), discarded, "{resumed}");
    if discarded.is_some() {
        assert!(resumed["skipped_ids"].as_u64().unwrap() > 0, "{resumed}");
    }
    resumed
}

/// No text of the slow answer was recorded after the run was resumed: the executor that
/// lost it recorded nothing more.
fn assert_no_slow_text_after_resumption(events: &[(String, Value)]) {
    let resumed_at = events.iter().position(|(kind, _)| kind == "run.resumed").unwrap();
    let late: Vec<_> = events[resumed_at..]
        .iter()
        .filter(|(kind, payload)| kind == "message.delta" && payload.to_string().contains("slow"))
        .collect();
    assert!(late.is_empty(), "text of the lost stream recorded late: {late:?}");
    let answer = of_type(events, "message.completed");
    assert_eq!(
        answer.last().unwrap()["content"],
        FINAL_ANSWER,
        "{:#?}",
        summary(events)
    );
}

/// The ledger reserved, charged and released each model call of the run once (keyed by its
/// step, whatever the crashes), charged what the run recorded, and holds nothing for it now.
async fn assert_charged_once(pool: &sqlx::PgPool, run_id: Uuid, events: &[(String, Value)]) {
    let entries: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, payload::jsonb FROM events
          WHERE aggregate_type = 'credit_account' AND payload ->> 'run_id' = $1 ORDER BY sequence",
    )
    .bind(run_id.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    // In key order: a call whose charge the killed node never committed is charged by the
    // node that ends the run, after the later calls' charges.
    let keys = |kind: &str| -> Vec<String> {
        let mut keys: Vec<String> = entries
            .iter()
            .filter(|(found, _)| found == kind)
            .map(|(_, payload)| payload["llm_call"].as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    };
    let mut steps: Vec<String> = of_type(events, "llm_call.completed")
        .iter()
        .map(|payload| format!("{run_id}/{}", payload["step"]))
        .collect();
    steps.sort();
    for kind in [
        "credit_account.reserved",
        "credit_account.charged",
        "credit_account.released",
    ] {
        assert_eq!(keys(kind), steps, "{kind}: once per model call: {entries:#?}");
    }
    let charged: u64 = entries
        .iter()
        .filter(|(kind, _)| kind == "credit_account.charged")
        .map(|(_, payload)| payload["credits"].as_u64().unwrap())
        .sum();
    let recorded: u64 = of_type(events, "llm_call.completed")
        .iter()
        .map(|payload| payload["credits"].as_u64().unwrap())
        .sum();
    assert_eq!(charged, recorded, "the run's credits are its charges");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_during_a_model_stream_is_restarted_and_finishes_the_run_once() {
    install_crypto_provider();
    let llm = FakeLlm::start().await;
    llm.push(slow_answer(200)).push(Reply::words(FINAL_ANSWER));
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let env = node_env(&name, &llm, None);
    let node = Node::serve_off_runtime(&env).await;
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    let (run_id, _) = start_run(&node, None).await;
    wait_events(
        &pool,
        run_id,
        Duration::from_secs(30),
        "three batches of text",
        |events| of_type(events, "message.delta").len() >= 3,
    )
    .await;
    node.kill();
    assert!(
        llm.wait_closed_early(1, Duration::from_secs(5)).await,
        "the killed node's stream was cut off"
    );

    let restarted = Instant::now();
    let node = Node::serve_off_runtime(&env).await;
    let ready = restarted.elapsed();
    let events = wait_events(
        &pool,
        run_id,
        ready + RESUME_BOUND,
        "the resumption",
        has("run.resumed"),
    )
    .await;
    let resumed_after = restarted.elapsed();
    eprintln!(
        "the restarted node was ready {ready:?} after it was started and resumed the run \
         {resumed_after:?} after it was started"
    );
    assert_ne!(
        of_type(&events, "run.resumed")[0]["executor"],
        of_type(&events, "run.started")[0]["executor"],
        "the new process resumes under its own executor id"
    );
    let events = wait_events(
        &pool,
        run_id,
        FINISH_BOUND,
        "the run's completion",
        has("run.completed"),
    )
    .await;

    assert_recorded_once(&events, 1);
    the_resumption(&events, Some(1));
    assert_no_slow_text_after_resumption(&events);
    let started_calls: Vec<u64> = of_type(&events, "llm_call.started")
        .iter()
        .map(|payload| payload["step"].as_u64().unwrap())
        .collect();
    assert_eq!(started_calls, [1, 1], "step 1 was called again, not a step 2");
    assert_eq!(llm.request_count(), 2, "one call cut off, one finished");
    assert_charged_once(&pool, run_id, &events).await;
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}

/// A tool server that records each request's `Idempotency-Key` and answers the first one
/// only after a long while (the test kills its caller meanwhile), the others at once.
struct ToolServer {
    url: String,
    keys: Arc<Mutex<Vec<Option<String>>>>,
    server: tokio::task::JoinHandle<()>,
}

struct ToolState {
    keys: Arc<Mutex<Vec<Option<String>>>>,
    first_delay: Duration,
    seen: AtomicUsize,
}

#[handler]
async fn slow_tool(state: Data<&Arc<ToolState>>, headers: &poem::http::HeaderMap) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    state.keys.lock().unwrap().push(key);
    if state.seen.fetch_add(1, Ordering::SeqCst) == 0 {
        tokio::time::sleep(state.first_delay).await;
    }
    Json(json!({ "city": "Oslo", "weather": "rain" }))
}

impl ToolServer {
    async fn start(first_delay: Duration) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let keys = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ToolState {
            keys: Arc::clone(&keys),
            first_delay,
            seen: AtomicUsize::new(0),
        });
        let app = Route::new().at("/weather", post(slow_tool)).data(state);
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            url: format!("http://{address}/weather"),
            keys,
            server,
        }
    }

    fn keys(&self) -> Vec<Option<String>> {
        self.keys.lock().unwrap().clone()
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_during_a_tool_call_is_restarted_and_calls_it_again_with_the_same_key() {
    install_crypto_provider();
    let tool = ToolServer::start(Duration::from_secs(60)).await;
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool_call(
        "call_1",
        "weather",
        [r#"{"city":"#, r#""Oslo"}"#],
    ))
    .push(Reply::words(FINAL_ANSWER));
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let env = node_env(&name, &llm, None);
    let node = Node::serve_off_runtime(&env).await;
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    let (run_id, _) = start_run(&node, Some(("weather", &tool.url))).await;
    wait_events(
        &pool,
        run_id,
        Duration::from_secs(30),
        "the tool call's start",
        has("tool_call.started"),
    )
    .await;
    let started = Instant::now();
    while tool.keys().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the tool was not called"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill();

    let restarted = Instant::now();
    let node = Node::serve_off_runtime(&env).await;
    let events = wait_events(
        &pool,
        run_id,
        FINISH_BOUND,
        "the run's completion",
        has("run.completed"),
    )
    .await;
    eprintln!(
        "the run completed {:?} after the node was restarted",
        restarted.elapsed()
    );

    assert_recorded_once(&events, 2);
    the_resumption(&events, None);
    let starts = of_type(&events, "tool_call.started");
    let attempts: Vec<u64> = starts
        .iter()
        .map(|payload| payload["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2], "started, then started again after the crash");
    let key = starts[0]["idempotency_key"].as_str().unwrap().to_owned();
    assert_eq!(
        starts[1]["idempotency_key"],
        key.as_str(),
        "the retry has the same key"
    );
    assert_eq!(
        tool.keys(),
        [Some(key.clone()), Some(key)],
        "the tool server saw the call twice, with one key"
    );
    let completed = of_type(&events, "tool_call.completed");
    assert_eq!(completed.len(), 1, "the call's outcome is recorded once");
    assert_eq!(completed[0]["call_id"], starts[0]["call_id"]);
    assert!(of_type(&events, "tool_call.failed").is_empty());
    assert_eq!(
        of_type(&events, "message.completed").last().unwrap()["content"],
        FINAL_ANSWER
    );
    assert_charged_once(&pool, run_id, &events).await;
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}

/// The most streams the fake provider had open at once, sampled every 5 ms.
fn watch_open_streams(llm: &Arc<FakeLlm>) -> Arc<AtomicUsize> {
    let most = Arc::new(AtomicUsize::new(0));
    let (llm, sink) = (Arc::clone(llm), Arc::clone(&most));
    tokio::spawn(async move {
        loop {
            sink.fetch_max(llm.open_streams(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    most
}

/// Two `agentry serve` processes on one database and a private NATS, and a run with a slow
/// answer streaming: which process executes it (the first) and which does not, after the run
/// has streamed for `streamed_for`, during which neither the other process nor a second
/// request to the provider showed up.
pub(crate) struct TwoWorkers {
    nats: PrivateNats,
    name: String,
    pub(crate) pool: sqlx::PgPool,
    llm: Arc<FakeLlm>,
    most_open: Arc<AtomicUsize>,
    pub(crate) run_id: Uuid,
    /// The access token of the run's owner.
    pub(crate) token: String,
    pub(crate) executing: Node,
    pub(crate) idle: Node,
}

impl TwoWorkers {
    pub(crate) async fn start(streamed_for: Duration) -> Self {
        install_crypto_provider();
        let nats = PrivateNats::start();
        let llm = Arc::new(FakeLlm::start().await);
        // The run's last answer streams for about four seconds, so a frozen worker woken at
        // the takeover finds the run running under another executor.
        llm.push(slow_answer(300))
            .push(Reply::words(FINAL_ANSWER).every(Duration::from_secs(1)));
        let most_open = watch_open_streams(&llm);
        let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
        let env = node_env(&name, &llm, Some(&nats));
        let first = Node::serve_off_runtime(&env).await;
        let second = Node::serve_off_runtime(&env).await;
        let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
        let (run_id, token) = start_run(&first, None).await;
        let events = wait_events(
            &pool,
            run_id,
            Duration::from_secs(30),
            "the run's start",
            has("run.started"),
        )
        .await;
        let executor = of_type(&events, "run.started")[0]["executor"]
            .as_str()
            .unwrap()
            .to_owned();
        let (executing, idle) = match (first.log_contains(&executor), second.log_contains(&executor)) {
            (true, false) => (first, second),
            (false, true) => (second, first),
            other => panic!("executor {executor} is in the logs of (first, second): {other:?}"),
        };
        let streaming = Instant::now();
        while streaming.elapsed() < streamed_for {
            let events = run_events(&pool, run_id).await;
            let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
            assert!(
                !kinds.contains(&"run.resumed") && !kinds.contains(&"run.completed"),
                "while the first executes, nobody else takes the run: {kinds:?}"
            );
            assert!(llm.request_count() <= 1, "the provider is asked once");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deltas = of_type(&run_events(&pool, run_id).await, "message.delta").len();
        assert!(deltas >= 2, "the answer is streaming ({deltas} batches recorded)");
        assert_eq!(llm.request_count(), 1, "the provider was asked once");
        Self {
            nats,
            name,
            pool,
            llm,
            most_open,
            run_id,
            token,
            executing,
            idle,
        }
    }

    /// Messages in this deployment's runs queue (the dispatches not yet acknowledged).
    async fn queued_dispatches(&self) -> u64 {
        let deployment: String =
            sqlx::query_scalar("SELECT value FROM platform_secrets WHERE name = 'deployment_id'")
                .fetch_one(&self.pool)
                .await
                .unwrap();
        let client = async_nats::connect(self.nats.url()).await.unwrap();
        let mut stream = async_nats::jetstream::new(client)
            .get_stream(format!("{RUNS_STREAM}_{deployment}"))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Waits for the other process to resume the run; how long after `since` it did.
    pub(crate) async fn wait_taken_over(&self, since: Instant) -> Duration {
        let events = wait_events(
            &self.pool,
            self.run_id,
            TAKEOVER_BOUND.saturating_sub(since.elapsed()),
            "the takeover",
            has("run.resumed"),
        )
        .await;
        let took = since.elapsed();
        let resumed = the_resumption(&events, Some(1));
        let by = resumed["executor"].as_str().unwrap();
        assert!(
            self.idle.log_contains(by),
            "the other process ({by}) took the run over"
        );
        took
    }

    pub(crate) async fn finish(self) {
        let events = wait_events(
            &self.pool,
            self.run_id,
            FINISH_BOUND,
            "the run's completion",
            has("run.completed"),
        )
        .await;
        let failed = std::panic::catch_unwind(|| {
            assert_recorded_once(&events, 1);
            assert_no_slow_text_after_resumption(&events);
            assert_eq!(self.llm.request_count(), 2, "one call given up, one finished");
        });
        if let Err(panic) = failed {
            for (label, node) in [("executing", &self.executing), ("idle", &self.idle)] {
                let log = node.log.lock().unwrap();
                let lines: Vec<_> = log.iter().filter(|line| !line.contains("\"INFO\"")).collect();
                eprintln!("{label} node's warnings and errors: {lines:#?}");
            }
            std::panic::resume_unwind(panic);
        }
        self.pool.close().await;
        self.idle.terminate();
        drop(self.executing);
        drop_database(&self.name).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nats_one_of_two_workers_executes_a_run_and_the_other_takes_it_over_when_it_is_killed() {
    // Longer than the queue's ack wait (6 s): the executing worker keeps the run by its
    // progress acks, not by luck.
    let workers = TwoWorkers::start(Duration::from_secs(8)).await;
    let killed = Instant::now();
    workers.executing.signal("KILL");
    let took = workers.wait_taken_over(killed).await;
    eprintln!("the other worker resumed the run {took:?} after the first was killed");
    assert!(
        workers.most_open.load(Ordering::SeqCst) <= 1,
        "the provider never had two streams of the run open at once"
    );
    workers.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nats_a_frozen_worker_is_replaced_and_records_nothing_when_it_wakes() {
    let workers = TwoWorkers::start(Duration::from_secs(1)).await;
    let frozen = Instant::now();
    workers.executing.signal("STOP");
    let took = workers.wait_taken_over(frozen).await;
    eprintln!("the other worker resumed the run {took:?} after the first was frozen");

    // Woken while the other executes the run: its next record is refused and its watcher
    // drops its model call.
    let woken = Instant::now();
    workers.executing.signal("CONT");
    assert!(
        workers.llm.wait_closed_early(1, Duration::from_secs(5)).await,
        "the woken worker dropped its model call"
    );
    eprintln!(
        "the woken worker dropped its model call after {:?}",
        woken.elapsed()
    );
    // The woken worker's delivery of the run is stale: acknowledging it would acknowledge
    // the other worker's (JetStream acknowledges by message), leaving the run it executes
    // out of the queue, so nobody would take it over if that worker died too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = workers.queued_dispatches().await;
    let events = run_events(&workers.pool, workers.run_id).await;
    assert!(
        !has("run.completed")(&events),
        "the other worker is still executing the run: {:#?}",
        summary(&events)
    );
    assert_eq!(
        queued, 1,
        "the runs queue still holds the run for the worker executing it"
    );
    let completed = wait_events(
        &workers.pool,
        workers.run_id,
        FINISH_BOUND,
        "the run's completion",
        has("run.completed"),
    )
    .await;
    assert_eq!(workers.llm.completed(), 1, "only the taken-over call finished");
    // Give a woken worker that wrongly goes on the time to show it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = run_events(&workers.pool, workers.run_id).await;
    assert_eq!(events, completed, "nothing was recorded after the run completed");
    workers.finish().await;
}
