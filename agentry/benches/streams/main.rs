//! Run streams under load (issue 13, "Speed and memory"): token latency, memory per idle
//! WebSocket, delivered deltas per second and server CPU per delta, each measured against
//! Agentry and, in the same run, against a bare reference relay.
//!
//! `cargo bench -p agentry --bench streams` (needs Postgres, and `ulimit -n` above
//! `BENCH_IDLE` + a few hundred: this process and the server each hold every idle socket).
//! Run it under the cargo lock (`flock /tmp/agentry-cargo.lock cargo bench …`) on a shared
//! machine, so no build competes with it for the two cores.
//!
//! **Agentry** is `agentry serve` as a process of its own (`CARGO_BIN_EXE_agentry`, started
//! fresh for each phase so one phase's heap does not hide the next one's memory), on a free
//! port, with `RUST_LOG=warn`, the rate limits lifted, and this bench's LLM as its
//! OpenAI-compatible endpoint. Its CPU time (`utime + stime`, `/proc/<pid>/stat`) and memory
//! (`VmRSS`) are the server's alone; Postgres (and NATS) are not counted. Clients speak to it
//! as any client would: an owner's API key, `POST /v1/conversations` and `…/runs`, then
//! `GET /v1/runs/{id}/ws` with the key as a bearer header.
//!
//! **The LLM** (in this process, on a thread of its own) streams what each run's input asks:
//! `paced <chunks> <ms>` or `burst <chunks>` (as fast as the connection takes them). Each
//! chunk's text is the time it was generated, `<µs since the UNIX epoch> `, so a subscriber
//! reads the chunk's latency from the chunk: token latency = time the frame was read here −
//! time in the chunk (same clock). A run's LLM waits until all its subscribers are attached.
//!
//! **The reference** (`reference.rs`: this binary again, as a process of its own) relays the
//! same LLM stream to WebSocket readers with nothing else (no store, no auth, no ordering):
//! Agentry's figures over its say what the rest costs, in ratios that survive drift.
//!
//! **Subscribers** read every frame, check ids grow by one, and after a cut-off (close 1013) or
//! a break resume with `?after=<last id>`; every cut-off, break, hole or repeat is reported.
//!
//! Phases (`BENCH_PHASES`, default `latency,load,idle`), each against the reference, then
//! Agentry:
//! - `latency`: `BENCH_RUNS` (20) runs at once × `BENCH_SUBSCRIBERS` (50), `BENCH_CHUNKS`
//!   (250) chunks every `BENCH_CHUNK_MS` (20) ms; each lane starts its next run when one ends,
//!   the lanes' first runs spread over one run's length (otherwise all runs would start and
//!   end together, with all their subscribers' connections, a wave real traffic does not make).
//!   Token latency p50/p99/max over the window; deltas/s and CPU per delta at that load.
//! - `load`: `BENCH_LOAD_RUNS` (4) × `BENCH_LOAD_SUBSCRIBERS` (50), `BENCH_LOAD_CHUNKS` (2000)
//!   chunks every `BENCH_LOAD_CHUNK_MS` ms (default 0: as fast as possible). Delivered deltas
//!   per second and server CPU per delivered delta (the seed's stack: 0.65 ms).
//! - `idle`: `BENCH_IDLE` (10000) WebSockets on one run that waits (Agentry: an `echo` agent's
//!   run awaiting a tool's approval), opened `BENCH_CONNECT_CONCURRENCY` (100) at a time and
//!   held `BENCH_IDLE_HOLD_SECONDS` (20, past one 15 s heartbeat), closed, and N opened again.
//!   Memory per connection = server RSS delta / N, the baseline taken with one connection
//!   already open; the second round shows whether closed connections' memory is reused.
//!
//! Other settings: `BENCH_SECONDS` (20) measuring window of a streaming phase, after
//! `BENCH_WARMUP_SECONDS` (5); `BENCH_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/agentry_bench_streams, dropped and recreated);
//! `BENCH_NATS_URL` (unset: one node, the live path in process; set: Agentry gets it as
//! `NATS_URL`, so the live path goes through core NATS as between nodes, and the latency
//! phase also measures core NATS publish → subscribe alone at the same message rate);
//! `BENCH_SERVERS` (default `reference,agentry`: which to measure, in that order);
//! `BENCH_AGENTRY_WRAPPER` (unset; e.g. `perf record -g -o /tmp/agentry.perf`: a command
//! `agentry serve` is started under, to find where its time or memory goes; stopping the
//! server signals the wrapper's whole process group. Unless the wrapper `exec`s the server,
//! the CPU and RSS figures are the wrapper's, not the server's, and mean nothing).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod llm;
mod nats_probe;
mod nodelay;
mod phases;
mod process;
mod reference;
mod report;
mod subscriber;
mod target;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;

use llm::Llm;
use phases::{Idle, Streaming};
use process::ServerProcess;
use support::env_or;
use target::{Target, Tenant};

/// Everything the environment sets.
struct Config {
    database_url: String,
    nats_url: Option<String>,
    phases: Vec<String>,
    /// Which servers each phase measures: `true` for the reference.
    servers: Vec<bool>,
    latency: Streaming,
    load: Streaming,
    idle: Idle,
}

impl Config {
    fn from_env() -> Self {
        let window = Duration::from_secs(env_or("BENCH_SECONDS", 20));
        let warmup = Duration::from_secs(env_or("BENCH_WARMUP_SECONDS", 5));
        let pace = |name: &str, default: u64| match env_or(name, default) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        Self {
            database_url: support::database_url("agentry_bench_streams"),
            nats_url: std::env::var("BENCH_NATS_URL").ok().filter(|url| !url.is_empty()),
            phases: std::env::var("BENCH_PHASES")
                .unwrap_or_else(|_| "latency,load,idle".to_owned())
                .split(',')
                .map(|phase| phase.trim().to_owned())
                .collect(),
            servers: std::env::var("BENCH_SERVERS")
                .unwrap_or_else(|_| "reference,agentry".to_owned())
                .split(',')
                .map(|server| match server.trim() {
                    "reference" => true,
                    "agentry" => false,
                    other => panic!("BENCH_SERVERS: unknown server {other:?} (reference, agentry)"),
                })
                .collect(),
            latency: Streaming {
                runs: env_or("BENCH_RUNS", 20) as usize,
                subscribers: env_or("BENCH_SUBSCRIBERS", 50) as usize,
                chunks: env_or("BENCH_CHUNKS", 250),
                every: pace("BENCH_CHUNK_MS", 20),
                warmup,
                window,
            },
            load: Streaming {
                runs: env_or("BENCH_LOAD_RUNS", 4) as usize,
                subscribers: env_or("BENCH_LOAD_SUBSCRIBERS", 50) as usize,
                chunks: env_or("BENCH_LOAD_CHUNKS", 2000),
                every: pace("BENCH_LOAD_CHUNK_MS", 0),
                warmup,
                window,
            },
            idle: Idle {
                connections: env_or("BENCH_IDLE", 10_000) as usize,
                concurrency: env_or("BENCH_CONNECT_CONCURRENCY", 100) as usize,
                hold: Duration::from_secs(env_or("BENCH_IDLE_HOLD_SECONDS", 20)),
            },
        }
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if reference::serve_if_asked() {
        return;
    }
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let config = Config::from_env();
    println!("streams bench: {} at the start", process::machine_load());
    println!(
        "agentry: {}; phases: {}\n",
        config.nats_url.as_deref().map_or_else(
            || "one node, live path in process".to_owned(),
            |url| format!("live path over core NATS at {url}")
        ),
        config.phases.join(", ")
    );
    let _ = sqlx::Postgres::force_drop_database(&config.database_url).await;
    sqlx::Postgres::create_database(&config.database_url)
        .await
        .unwrap();

    let llm = Arc::new(Llm::default());
    let llm_url = llm::start(Arc::clone(&llm)).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut servers = Servers {
        config: &config,
        llm_url,
        http,
        tenant: None,
    };

    let mut latency = Vec::new();
    let mut load = Vec::new();
    let mut idle = Vec::new();
    let mut nats_hop = None;
    for phase in &config.phases {
        if phase == "latency"
            && let Some(url) = &config.nats_url
        {
            println!(
                "## latency: core NATS publish → subscribe, {} subjects",
                config.latency.runs
            );
            let latency = nats_probe::probe(url, &config.latency).await;
            report::print_nats_hop(&latency);
            println!();
            nats_hop = Some(latency);
        }
        for &on_reference in &config.servers {
            let (server, target) = servers.start(on_reference).await;
            println!("## {phase}: {} (pid {})", target.name(), server.pid());
            match phase.as_str() {
                "latency" => {
                    let figures = phases::streaming(&target, &server, &llm, &config.latency).await;
                    report::print_streaming(&figures, &config.latency);
                    latency.push(figures);
                }
                "load" => {
                    let figures = phases::streaming(&target, &server, &llm, &config.load).await;
                    report::print_streaming(&figures, &config.load);
                    load.push(figures);
                }
                "idle" => {
                    let figures = phases::idle(&target, &server, &config.idle).await;
                    report::print_idle(&figures);
                    idle.push(figures);
                }
                other => panic!("BENCH_PHASES: unknown phase {other:?} (latency, load, idle)"),
            }
            println!("{}\n", process::machine_load());
            server.stop().await;
        }
    }
    report::print_summary(
        &config.latency,
        &latency,
        nats_hop.as_ref(),
        &config.load,
        &load,
        &idle,
    );
    println!("\nstreams bench: {} at the end", process::machine_load());
}

/// Starts the servers under test.
struct Servers<'a> {
    config: &'a Config,
    llm_url: String,
    http: reqwest::Client,
    /// Agentry's owner, key and agents, made on its first start.
    tenant: Option<Tenant>,
}

impl Servers<'_> {
    async fn start(&mut self, reference: bool) -> (ServerProcess, Target) {
        let port = testkit::free_port();
        if reference {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .env(reference::LISTEN_VAR, format!("127.0.0.1:{port}"))
                .env(reference::LLM_VAR, &self.llm_url);
            let server = ServerProcess::start(command, port).await;
            let target = Target::reference(self.http.clone(), server.base_url.clone());
            return (server, target);
        }
        let server = ServerProcess::start(self.agentry_command(port), port).await;
        let tenant = match &self.tenant {
            Some(tenant) => tenant.clone(),
            None => Tenant::create(&self.http, &server.base_url).await,
        };
        self.tenant = Some(tenant.clone());
        let target = Target::agentry(self.http.clone(), server.base_url.clone(), tenant);
        (server, target)
    }

    /// `agentry serve` with this bench's settings and none of the shell's.
    fn agentry_command(&self, port: u16) -> Command {
        let config = self.config;
        let binary = env!("CARGO_BIN_EXE_agentry");
        let wrapper = std::env::var("BENCH_AGENTRY_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("AGENTRY_") || name == "DATABASE_URL" || name == "NATS_URL" {
                command.env_remove(name);
            }
        }
        let runs_at_once = config.latency.runs.max(config.load.runs).max(64);
        command
            .env("DATABASE_URL", &config.database_url)
            .env("AGENTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("AGENTRY_LLM_BASE_URL", &self.llm_url)
            .env("AGENTRY_LLM_API_KEY", "bench-key")
            .env("AGENTRY_RATE_LIMIT_PER_MINUTE", "100000000")
            .env("AGENTRY_RATE_LIMIT_BURST", "1000000")
            .env("AGENTRY_AUTH_RATE_LIMIT_PER_MINUTE", "100000")
            .env("AGENTRY_AUTH_RATE_LIMIT_BURST", "100000")
            .env("AGENTRY_TOOLS_ALLOW_PRIVATE_NETWORKS", "true")
            .env("AGENTRY_MAX_CONCURRENT_RUNS", runs_at_once.to_string())
            .env("RUST_LOG", "warn");
        if let Some(nats_url) = &config.nats_url {
            command.env("NATS_URL", nats_url);
        }
        command
    }
}
