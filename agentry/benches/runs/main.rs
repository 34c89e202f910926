//! The agent runtime's own cost (issue 12): runs of 3 steps (the model calls a tool, the tool
//! answers, the model answers) against an LLM and a tool server that answer instantly, at
//! several concurrencies: runs completed per second, the overhead per step measured at the
//! servers, and the database bytes per run.
//!
//! `cargo bench -p agentry --bench runs` (needs Postgres). `BENCH_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/agentry_bench_runs, dropped and recreated),
//! `BENCH_SECONDS` per concurrency (default 10), `BENCH_CONCURRENCY` (default `1,16,64`).
//!
//! The real application is built on port 0 as `agentry serve` builds it (pool of 32, the
//! in-process run queue, at most 64 runs at once, `AGENTRY_TOOLS_ALLOW_PRIVATE_NETWORKS=true`),
//! with a tool created over `POST /v1/tools` and an agent naming it. Each client, in a loop:
//! `POST /v1/conversations`, `POST /v1/conversations/{id}/runs` with a unique input (the run's
//! tag), waits until the LLM has sent the run's final answer, then polls the event store every
//! millisecond until the conversation records the run's end.
//!
//! After Agentry's phases, the same runs against the same servers with nothing but their
//! durable steps (`raw_steps.rs`, `BENCH_RAW=0` skips it): the raw limit of a durable run on
//! this machine, for the per-step figures to be read against.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod client;
mod raw_steps;
mod report;
mod servers;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::migrate::MigrateDatabase;

use client::{Client, Finished, Tally};
use report::Sizes;
use servers::Timeline;
use support::{env_or, measure, post, register_owner, serve, serve_settings};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::database_url("agentry_bench_runs");
    let phase = Duration::from_secs(env_or("BENCH_SECONDS", 10));
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,16,64".to_owned())
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_CONCURRENCY: numbers"))
        .collect();
    let _ = sqlx::Postgres::drop_database(&url).await;

    let timeline = Arc::new(Timeline::default());
    let llm_url = servers::start_llm(Arc::clone(&timeline)).await;
    let tool_url = servers::start_tool(Arc::clone(&timeline)).await;
    let llm_url_and_tool = (llm_url.clone(), tool_url.clone());
    let mut settings = serve_settings(&url);
    settings.runs.llm_base_url = Some(llm_url);
    settings.runs.llm_api_key = Some(secrecy::SecretString::from("bench-key".to_owned()));
    settings.runs.tools_allow_private_networks = true;
    // The runtime's own overhead, comparable with the runs before billing existed; what billing
    // adds is the billing bench's (`cargo bench -p agentry --bench billing`).
    settings.billing.billing_enabled = false;
    let max_runs = settings.runs.max_concurrent_runs;
    let (address, stop) = serve(settings).await;
    let largest = concurrencies.iter().copied().max().unwrap_or(1);
    // A connection for each raw run's task, and the group-commit writers (`raw_steps.rs`).
    let pool = eventstore::database::connect(&url, u32::try_from(largest + 4).unwrap_or(u32::MAX).max(20))
        .await
        .unwrap();
    support::create_bare_table(&pool).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(largest)
        .build()
        .unwrap();
    let token = register_owner(&http, &address).await;
    let tool = json!({
        "name": "lookup",
        "description": "Looks up the weather of a run.",
        "parameters": { "type": "object", "properties": { "run": { "type": "string" } }, "required": ["run"] },
        "url": tool_url,
        "secret": "bench-secret-0123456789",
        "timeout_ms": 5000,
    });
    post(&http, &address, &token, "/v1/tools", &tool, 201).await;
    let agent = json!({
        "name": "Bench", "model": "bench-model", "system_prompt": "Answer briefly.",
        "tools": ["lookup"], "max_steps": 5,
    });
    let agent = post(&http, &address, &token, "/v1/agents", &agent, 201).await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();

    // The raw limit, for scale: one durable row per transaction, with a run event's bytes.
    let payload = json!({ "type": "tool_call.completed", "call_id": uuid::Uuid::now_v7(), "result": { "status": 200, "body": "x".repeat(40) } });
    let metadata = json!({ "actor": "system", "org_id": uuid::Uuid::now_v7(), "correlation_id": uuid::Uuid::now_v7(), "recorded_at": chrono::Utc::now() });
    let bare_1 = support::run_bare(&pool, 1, Duration::from_secs(3), &payload, &metadata).await;
    let bare_16 = support::run_bare(&pool, 16, Duration::from_secs(3), &payload, &metadata).await;
    println!(
        "raw limit on this database: bare INSERT+COMMIT {bare_1:.0}/s from 1 connection ({:.2} ms each), {bare_16:.0}/s from 16\n",
        1e3 / bare_1
    );
    println!(
        "executor limit: {max_runs} runs at once; {} s per concurrency\n",
        phase.as_secs()
    );

    // What the background loops (relay, projectors) commit while nothing happens, over one
    // reading's wait, to take out of each phase's count.
    let idle = Sizes::read(&pool).await;
    let idle = Sizes::read(&pool).await.transactions_since(&idle);
    println!("idle: {idle} transactions committed over one 11 s wait (background loops and the reading)\n");

    let mut summaries = Vec::new();
    for &concurrency in &concurrencies {
        let before = Sizes::read(&pool).await;
        let client = Client {
            http: http.clone(),
            address: address.clone(),
            token: token.clone(),
            agent_id: agent_id.clone(),
            timeline: Arc::clone(&timeline),
            pool: pool.clone(),
        };
        let finished = Arc::new(Mutex::new(Vec::new()));
        let rate = run_phase(&client, concurrency, phase, &finished).await;
        let finished = std::mem::take(&mut *finished.lock().unwrap());
        let after = Sizes::read(&pool).await;
        println!("## {concurrency} concurrent runs\n");
        let summary = report::analyse(&pool, concurrency, rate, &finished, (&before, &after), idle).await;
        summaries.push(summary);
    }
    report::print_summary(&summaries);
    let _ = stop.send(());
    if env_or("BENCH_RAW", 1) == 1 {
        // Agentry stopped: the raw runs have the machine to themselves.
        tokio::time::sleep(Duration::from_secs(1)).await;
        raw_limit(
            &pool,
            &http,
            &llm_url_and_tool.0,
            &llm_url_and_tool.1,
            &timeline,
            &concurrencies,
            phase,
        )
        .await;
    }
    pool.close().await;
}

/// The same runs with nothing but their durable steps (`raw_steps.rs`), at each concurrency,
/// committing per run and grouped: the floor under Agentry's per-step figures.
async fn raw_limit(
    pool: &sqlx::PgPool,
    http: &reqwest::Client,
    llm_url: &str,
    tool_url: &str,
    timeline: &Arc<Timeline>,
    concurrencies: &[usize],
    phase: Duration,
) {
    let payload = json!({ "type": "tool_call.completed", "call_id": uuid::Uuid::now_v7(), "result": { "status": 200, "body": "x".repeat(40) } }).to_string();
    println!("## the raw limit: the same runs, only their durable steps (`raw_steps.rs`)\n");
    println!("| concurrent runs | commits | runs/s | overhead per step p50 / p90 / p99 ms |");
    println!("|---|---|---|---|");
    for &concurrency in concurrencies {
        for (name, commit) in [
            ("a connection per run", raw_steps::Commit::PerRun(pool.clone())),
            ("grouped", raw_steps::Commit::grouped(pool, payload.clone()).await),
        ] {
            let raw = raw_steps::RawRuns {
                http: http.clone(),
                llm_url: llm_url.to_owned(),
                tool_url: tool_url.to_owned(),
                timeline: Arc::clone(timeline),
                commit,
            };
            let (steps, rate) = raw_steps::measure_raw(&raw, concurrency, phase, &payload).await;
            let ms = |quantile: f64| steps.value_at_quantile(quantile) as f64 / 1e3;
            println!(
                "| {concurrency} | {name} | {rate:.1} | {:.2} / {:.2} / {:.2} |",
                ms(0.5),
                ms(0.9),
                ms(0.99)
            );
        }
    }
    println!();
}

/// `concurrency` clients each running one run after another for `phase` (after a warm-up);
/// answers runs completed per second, and leaves every run in `finished`.
async fn run_phase(
    client: &Client,
    concurrency: usize,
    phase: Duration,
    finished: &Arc<Mutex<Vec<Finished>>>,
) -> f64 {
    let tally = Tally {
        stop: Arc::new(AtomicBool::new(false)),
        measuring: Arc::new(AtomicBool::new(false)),
        count: Arc::new(AtomicU64::new(0)),
        finished: Arc::clone(finished),
    };
    let tasks = (0..concurrency)
        .map(|number| {
            client
                .clone()
                .keep_running(format!("bench run {concurrency}-{number}"), tally.clone())
        })
        .collect();
    measure(phase, &tally.count, &tally.stop, tasks, &tally.measuring).await
}
