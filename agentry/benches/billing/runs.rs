//! The end-to-end parts: the runs bench's 3-step runs, with billing off and on, all clients in
//! one organization or each in its own. Each phase builds the real application with billing
//! on or off (or two, each on a database of its own, serving at once), runs its clients, and
//! stops it before the next phase starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use agentry::settings::Settings;
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use uuid::Uuid;

use crate::client::{Client, Finished, Tally};
use crate::load::{CpuSnapshot, Usage};
use crate::servers::Timeline;
use crate::support::{Served, measure_each, post, register, serve_settings};

/// Credits each organization starts with: enough that no run ever waits for credits (a call's
/// worst case here is about 10^4).
pub const SIGNUP_CREDITS: u64 = 1_000_000_000_000;

/// Where the bench's runs go: the database, the fake LLM and tool, and the clock they share.
pub struct Target {
    pub url: String,
    pub llm_url: String,
    pub tool_url: String,
    pub timeline: Arc<Timeline>,
    /// The bench's own connections (polls for runs' ends, the analysis).
    pub pool: PgPool,
}

/// An organization with an owner's token and an agent that calls the bench's tool.
#[derive(Clone)]
pub struct Org {
    pub org_id: Uuid,
    pub token: String,
    pub agent_id: String,
}

/// What one phase left behind (one application's share of it, when several served at once).
pub struct Phase {
    pub finished: Vec<Finished>,
    /// The application's runs completed per second in the measuring window.
    pub runs_per_second: f64,
    /// What the whole machine did during the phase (every application serving in it).
    pub usage: Usage,
    /// The log's last position before the phase: its events come after.
    pub since: i64,
    /// `run.paused` events recorded during the phase (0, or the figures mean little).
    pub paused: i64,
}

impl Target {
    /// A target on the database at `url` (dropped and recreated; the first application
    /// migrates it), with `count` organizations registered there.
    pub async fn create(
        url: &str,
        llm_url: &str,
        tool_url: &str,
        timeline: &Arc<Timeline>,
        count: usize,
    ) -> (Self, Vec<Org>) {
        let _ = sqlx::Postgres::drop_database(url).await;
        let target = Self {
            pool: PgPool::connect_lazy(url).unwrap(),
            url: url.to_owned(),
            llm_url: llm_url.to_owned(),
            tool_url: tool_url.to_owned(),
            timeline: Arc::clone(timeline),
        };
        let orgs = target.organizations(count).await;
        // The bench's own connections open once the application has migrated the database.
        let pool = eventstore::database::connect(url, 20).await.unwrap();
        (Self { pool, ..target }, orgs)
    }

    /// The settings of `agentry serve` against the bench's database and servers, billing every
    /// model call or none.
    fn settings(&self, billing: bool) -> Settings {
        let mut settings = serve_settings(&self.url);
        settings.runs.llm_base_url = Some(self.llm_url.clone());
        settings.runs.llm_api_key = Some(secrecy::SecretString::from("bench-key".to_owned()));
        settings.runs.tools_allow_private_networks = true;
        settings.billing.billing_enabled = billing;
        settings.billing.signup_credits = SIGNUP_CREDITS;
        settings
    }

    /// Registers `count` organizations, each with the tool `lookup` and an agent naming it.
    async fn organizations(&self, count: usize) -> Vec<Org> {
        let served = Served::start(self.settings(true)).await;
        let http = reqwest::Client::new();
        let mut orgs = Vec::with_capacity(count);
        for number in 0..count {
            let email = format!("bench-{number}@example.com");
            let (token, org_id) = register(&http, &served.address, &email, &format!("Bench {number}")).await;
            let agent_id = create_agent(&http, &served.address, &token, &self.tool_url).await;
            orgs.push(Org {
                org_id,
                token,
                agent_id,
            });
        }
        drop(http);
        served.stop().await;
        orgs
    }

    /// One client per entry of `orgs` (as that organization's owner), each running one run
    /// after another for `seconds` after a warm-up, against an application with billing on or
    /// off.
    pub async fn phase(&self, label: &str, orgs: &[Org], billing: bool, seconds: Duration) -> Phase {
        let mut phases = together(label, &[(self, orgs, billing)], seconds).await;
        phases.pop().unwrap()
    }

    fn client(&self, http: &reqwest::Client, address: &str, org: &Org) -> Client {
        Client {
            http: http.clone(),
            address: address.to_owned(),
            token: org.token.clone(),
            agent_id: org.agent_id.clone(),
            timeline: Arc::clone(&self.timeline),
            pool: self.pool.clone(),
        }
    }
}

/// One application per entry (its database, its clients' organizations, billing on or off),
/// all serving at once and their clients running in one measuring window, so the machine's
/// drift during the window weighs on each alike. Answers each application's phase; its
/// `usage` is the whole machine's.
pub async fn together(label: &str, apps: &[(&Target, &[Org], bool)], seconds: Duration) -> Vec<Phase> {
    let mut started = Vec::with_capacity(apps.len());
    for (target, _, billing) in apps {
        let since = last_position(&target.pool).await;
        let served = Served::start(target.settings(*billing)).await;
        started.push((since, served));
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(apps.iter().map(|(_, orgs, _)| orgs.len()).max().unwrap_or(1))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for ((target, orgs, _), (_, served)) in apps.iter().zip(&started) {
        let own: Vec<Client> = orgs
            .iter()
            .map(|org| target.client(&http, &served.address, org))
            .collect();
        clients.push(own);
    }
    let cpu = CpuSnapshot::take();
    let (finished, rates) = run_clients(label, clients, seconds).await;
    let usage = cpu.usage_until_now();
    drop(http);
    let mut phases = Vec::with_capacity(apps.len());
    for ((target, _, _), ((since, served), (finished, runs_per_second))) in apps
        .iter()
        .zip(started.into_iter().zip(finished.into_iter().zip(rates)))
    {
        served.stop().await;
        let paused = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE position > $1 AND event_type = 'run.paused'",
        )
        .bind(since)
        .fetch_one(&target.pool)
        .await
        .unwrap();
        phases.push(Phase {
            finished,
            runs_per_second,
            usage: usage.clone(),
            since,
            paused,
        });
    }
    phases
}

/// Creates the tool `lookup` at `tool_url` and an agent naming it; answers the agent's id.
async fn create_agent(http: &reqwest::Client, address: &str, token: &str, tool_url: &str) -> String {
    let tool = json!({
        "name": "lookup",
        "description": "Looks up the weather of a run.",
        "parameters": { "type": "object", "properties": { "run": { "type": "string" } }, "required": ["run"] },
        "url": tool_url,
        "secret": "bench-secret-0123456789",
        "timeout_ms": 5000,
    });
    post(http, address, token, "/v1/tools", &tool, 201).await;
    let agent = json!({
        "name": "Bench", "model": "bench-model", "system_prompt": "Answer briefly.",
        "tools": ["lookup"], "max_steps": 5,
    });
    let agent = post(http, address, token, "/v1/agents", &agent, 201).await;
    agent["id"].as_str().unwrap().to_owned()
}

/// Every client of every group running one run after another; answers each group's runs
/// (those started and ended inside the window marked `measured`) and its runs completed per
/// second in the window.
async fn run_clients(
    label: &str,
    groups: Vec<Vec<Client>>,
    seconds: Duration,
) -> (Vec<Vec<Finished>>, Vec<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let tallies: Vec<Tally> = groups
        .iter()
        .map(|_| Tally {
            stop: Arc::clone(&stop),
            measuring: Arc::clone(&measuring),
            count: Arc::default(),
            finished: Arc::default(),
        })
        .collect();
    let mut tasks = Vec::new();
    for ((group, clients), tally) in groups.into_iter().enumerate().zip(&tallies) {
        for (number, client) in clients.into_iter().enumerate() {
            tasks.push(client.keep_running(format!("bench run {label}-{group}-{number}"), tally.clone()));
        }
    }
    let each: Vec<&AtomicU64> = tallies.iter().map(|tally| tally.count.as_ref()).collect();
    let rates = measure_each(seconds, &each, &stop, tasks, &measuring).await;
    let finished = tallies
        .iter()
        .map(|tally| std::mem::take(&mut *tally.finished.lock().unwrap()))
        .collect();
    (finished, rates)
}

/// The log's last position.
pub async fn last_position(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}
