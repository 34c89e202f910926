//! What the run flows share: the application pointed at a [`FakeLlm`], a [`ToolServer`], an
//! owner, and the requests and reads each test makes.

use std::time::{Duration, Instant};

use agentry::settings::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::FakeLlm;

use crate::accounts::{expect_json, register};
use crate::helpers::TestApp;
use crate::tool_server::ToolServer;

/// The model agents use: any name is offered when a provider is configured.
pub const MODEL: &str = "fake-model";

/// How long a test waits for a run to reach a status: generous, for two busy cores.
/// (A bound for a failing run, not a figure: a run of 1,500 chunks took 14 s on a busy machine.)
const RUN_WAIT: Duration = Duration::from_secs(60);

/// The application, its fake provider, a tool server and a registered owner.
pub struct Flow {
    pub app: TestApp,
    pub llm: FakeLlm,
    pub tools: ToolServer,
    pub token: String,
}

impl Flow {
    /// Tools may call private addresses (the tool server is on 127.0.0.1).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`start`](Self::start), the settings further adjusted by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let llm = FakeLlm::start().await;
        let tools = ToolServer::start().await;
        let base_url = llm.base_url().to_owned();
        let app = TestApp::spawn_with(move |settings| {
            settings.runs.llm_base_url = Some(base_url);
            settings.runs.llm_api_key = Some(secrecy::SecretString::from("test-key"));
            settings.runs.tools_allow_private_networks = true;
            configure(settings);
        })
        .await;
        let token = register(&app, "flows").await.access_token;
        Self {
            app,
            llm,
            tools,
            token,
        }
    }

    /// Creates tool `name` calling `path` on the tool server, whose arguments are an object
    /// with a required string `city`; tells the tool server the secret from the 201.
    pub async fn tool(&self, name: &str, path: &str, timeout_ms: Option<u32>) {
        let mut body = json!({
            "name": name,
            "description": format!("The {name} tool."),
            "parameters": {
                "type": "object",
                "properties": { "city": { "type": "string" } },
                "required": ["city"],
                "additionalProperties": false
            },
            "url": self.tools.url(path),
        });
        if let Some(timeout_ms) = timeout_ms {
            body["timeout_ms"] = json!(timeout_ms);
        }
        let response = self
            .app
            .with_bearer(&self.token)
            .post_json("/v1/tools", &body)
            .await;
        let created = expect_json(response, StatusCode::CREATED, "create tool").await;
        let secret = created["secret"].as_str().expect("the secret, shown once");
        self.tools.expect_secret(path, secret);
    }

    /// An agent on [`MODEL`] with `tools` and the approval policy `approval`.
    pub async fn agent(&self, tools: &[&str], approval: Value) -> String {
        let body = json!({
            "name": "Flow agent",
            "model": MODEL,
            "system_prompt": "You are terse.",
            "tools": tools,
            "approval": approval,
            "max_steps": 5,
        });
        let response = self
            .app
            .with_bearer(&self.token)
            .post_json("/v1/agents", &body)
            .await;
        let created = expect_json(response, StatusCode::CREATED, "create agent").await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// A conversation with `agent_id` and a run in it with `input`: (conversation, run).
    pub async fn run(&self, agent_id: &str, input: &str) -> (String, String) {
        let conversation = crate::runs::conversation(&self.app, &self.token, agent_id).await;
        let run = crate::runs::start_run(&self.app, &self.token, &conversation, input).await;
        (conversation, run)
    }

    /// `GET /v1/runs/{id}`.
    pub async fn get_run(&self, run_id: &str) -> Value {
        let response = self
            .app
            .with_bearer(&self.token)
            .get(&format!("/v1/runs/{run_id}"))
            .await;
        expect_json(response, StatusCode::OK, "get run").await
    }

    /// Reads the run until its status is `status` (20 s at most); panics at once when it
    /// ended otherwise.
    pub async fn run_reaching(&self, run_id: &str, status: &str) -> Value {
        let started = Instant::now();
        loop {
            let run = self.get_run(run_id).await;
            if run["status"] == status {
                return run;
            }
            let ended = ["completed", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or(""));
            assert!(!ended, "the run ended without reaching {status}: {run:#}");
            assert!(
                started.elapsed() < RUN_WAIT,
                "the run did not reach {status} within {RUN_WAIT:?}: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /v1/runs/{id}/cancel`, expecting 202.
    pub async fn cancel(&self, run_id: &str) {
        let response = self
            .app
            .with_bearer(&self.token)
            .post_json(&format!("/v1/runs/{run_id}/cancel"), &json!({}))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "cancel");
    }

    /// The messages of `GET /v1/conversations/{id}`.
    pub async fn messages(&self, conversation_id: &str) -> Vec<Value> {
        let response = self
            .app
            .with_bearer(&self.token)
            .get(&format!("/v1/conversations/{conversation_id}"))
            .await;
        let conversation = expect_json(response, StatusCode::OK, "get conversation").await;
        conversation["messages"].as_array().unwrap().clone()
    }

    /// The run's events in order: (type, payload).
    pub async fn events(&self, run_id: &str) -> Vec<(String, Value)> {
        sqlx::query_as::<_, (String, Value)>(
            "SELECT event_type, payload::jsonb FROM events \
             WHERE aggregate_type = 'run' AND aggregate_id = $1 ORDER BY sequence",
        )
        .bind(run_id)
        .fetch_all(&self.app.pool)
        .await
        .unwrap()
    }

    /// The run's event types in order.
    pub async fn event_types(&self, run_id: &str) -> Vec<String> {
        self.events(run_id)
            .await
            .into_iter()
            .map(|(kind, _)| kind)
            .collect()
    }

    pub async fn cleanup(self) {
        self.app.cleanup().await;
    }
}

/// The single tool call of a run's step.
pub fn only_call(run: &Value, step: usize) -> &Value {
    let calls = run["steps"][step]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "one call in step {step}: {run:#}");
    &calls[0]
}

/// The `tool` messages of a recorded LLM request, in order.
pub fn tool_messages(request: &testkit::RecordedRequest) -> Vec<Value> {
    request
        .messages()
        .iter()
        .filter(|message| message["role"] == "tool")
        .cloned()
        .collect()
}
