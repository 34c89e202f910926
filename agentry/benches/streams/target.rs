//! The server a phase measures, as the clients speak to it: Agentry (its REST routes and
//! `GET /v1/runs/{id}/ws` with a bearer API key) or the reference relay (`POST /runs`,
//! `GET /runs/{id}/ws`). Everything else in the bench is the same for both.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::post;

/// How long the idle run may take to reach `awaiting_approval`.
const IDLE_RUN_DEADLINE: Duration = Duration::from_secs(30);

/// What Agentry's clients act with: created once, kept across the server's restarts (they are
/// in the database).
#[derive(Clone, Debug)]
pub struct Tenant {
    /// An API key of the owner (never expires, unlike an access token).
    pub key: String,
    /// An agent on the bench's LLM with no tools: its runs stream what their input asks.
    pub streaming_agent: String,
    /// An `echo` agent whose one tool needs approval: `/tool lookup {}` leaves its run waiting.
    pub waiting_agent: String,
}

impl Tenant {
    /// Registers the owner and creates the key, the tool and the two agents.
    pub async fn create(http: &reqwest::Client, address: &str) -> Self {
        let token = crate::support::register_owner(http, address).await;
        let key = post(
            http,
            address,
            &token,
            "/v1/api-keys",
            &json!({ "name": "bench" }),
            201,
        )
        .await;
        let key = key["key"].as_str().unwrap().to_owned();
        let tool = json!({
            "name": "lookup",
            "description": "Never called: every call waits for an approval that does not come.",
            "parameters": { "type": "object", "properties": {} },
            "url": "http://127.0.0.1:9/lookup",
            "secret": "bench-secret-0123456789",
            "timeout_ms": 5000,
        });
        post(http, address, &key, "/v1/tools", &tool, 201).await;
        let streaming = json!({
            "name": "Streamer", "model": "bench-model", "system_prompt": "Stream.", "max_steps": 1,
        });
        let streaming = post(http, address, &key, "/v1/agents", &streaming, 201).await;
        let waiting = json!({
            "name": "Waiter", "model": "echo", "system_prompt": "Wait.",
            "tools": ["lookup"], "approval": "always", "max_steps": 2,
        });
        let waiting = post(http, address, &key, "/v1/agents", &waiting, 201).await;
        Self {
            key,
            streaming_agent: streaming["id"].as_str().unwrap().to_owned(),
            waiting_agent: waiting["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// A server under test, from the clients' side.
#[derive(Clone)]
pub struct Target {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`.
    base_url: String,
    /// `None`: the reference relay.
    tenant: Option<Tenant>,
}

impl Target {
    pub fn agentry(http: reqwest::Client, base_url: String, tenant: Tenant) -> Self {
        Self {
            http,
            base_url,
            tenant: Some(tenant),
        }
    }

    pub fn reference(http: reqwest::Client, base_url: String) -> Self {
        Self {
            http,
            base_url,
            tenant: None,
        }
    }

    pub fn name(&self) -> &'static str {
        if self.tenant.is_some() {
            "agentry"
        } else {
            "reference"
        }
    }

    /// Starts a run whose LLM input is `input`; answers its id.
    pub async fn start_run(&self, input: &str) -> String {
        match &self.tenant {
            Some(tenant) => {
                self.start_agentry_run(tenant, &tenant.streaming_agent, input)
                    .await
            }
            None => self.start_reference_run(input).await,
        }
    }

    /// Starts a run that stays open without streaming (Agentry: awaiting an approval);
    /// answers its id once it is there.
    pub async fn start_idle_run(&self) -> String {
        let Some(tenant) = &self.tenant else {
            return self.start_reference_run("idle").await;
        };
        let run_id = self
            .start_agentry_run(tenant, &tenant.waiting_agent, "/tool lookup {}")
            .await;
        let started = Instant::now();
        loop {
            let run: Value = self
                .http
                .get(format!("{}/v1/runs/{run_id}", self.base_url))
                .bearer_auth(&tenant.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match run["status"].as_str() {
                Some("awaiting_approval") => return run_id,
                Some("queued" | "running") | None => {}
                Some(other) => panic!("the idle run {run_id} is {other}, not awaiting approval: {run}"),
            }
            assert!(
                started.elapsed() < IDLE_RUN_DEADLINE,
                "the idle run {run_id} did not reach awaiting_approval: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the idle run (Agentry: cancels it; the reference keeps it, nothing runs).
    pub async fn end_idle_run(&self, run_id: &str) {
        if let Some(tenant) = &self.tenant {
            post(
                &self.http,
                &self.base_url,
                &tenant.key,
                &format!("/v1/runs/{run_id}/cancel"),
                &json!({}),
                202,
            )
            .await;
        }
    }

    /// The WebSocket request for `run_id`'s stream after id `after` (0: from its first event).
    pub fn websocket_request(&self, run_id: &str, after: u64) -> Request {
        let ws_base = self.base_url.replacen("http://", "ws://", 1);
        let path = match self.tenant {
            Some(_) => format!("/v1/runs/{run_id}/ws"),
            None => format!("/runs/{run_id}/ws"),
        };
        let query = if after > 0 {
            format!("?after={after}")
        } else {
            String::new()
        };
        let mut request = format!("{ws_base}{path}{query}").into_client_request().unwrap();
        if let Some(tenant) = &self.tenant {
            let bearer = HeaderValue::from_str(&format!("Bearer {}", tenant.key)).unwrap();
            request.headers_mut().insert("authorization", bearer);
        }
        request
    }

    async fn start_agentry_run(&self, tenant: &Tenant, agent_id: &str, input: &str) -> String {
        let conversation = post(
            &self.http,
            &self.base_url,
            &tenant.key,
            "/v1/conversations",
            &json!({ "agent_id": agent_id }),
            201,
        )
        .await;
        let conversation_id = conversation["id"].as_str().unwrap();
        let run = post(
            &self.http,
            &self.base_url,
            &tenant.key,
            &format!("/v1/conversations/{conversation_id}/runs"),
            &json!({ "input": input }),
            202,
        )
        .await;
        run["run_id"].as_str().unwrap().to_owned()
    }

    async fn start_reference_run(&self, input: &str) -> String {
        let response = self
            .http
            .post(format!("{}/runs", self.base_url))
            .json(&json!({ "input": input }))
            .send()
            .await
            .unwrap();
        let run: Value = response.json().await.unwrap();
        run["run_id"].as_str().unwrap().to_owned()
    }
}
