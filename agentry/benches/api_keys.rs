//! API-key creation over HTTP versus a bare INSERT + COMMIT, at the same client count, in the
//! same run (issue 10: a write that waits for a read model must stay close to the raw limit).
//!
//! `cargo bench -p agentry --bench api_keys` (needs Postgres). `BENCH_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/agentry_bench_api, dropped and recreated), `BENCH_SECONDS`
//! per phase (default 5), `BENCH_ROUNDS` alternating rounds (default 3), `BENCH_CLIENTS`
//! (default 16).
//!
//! The real application is built on port 0 exactly as `agentry serve` builds it (its own pool
//! of the default size, its projectors and relay running), and spoken to by a reqwest client
//! in this process: every `POST /v1/api-keys` authenticates the owner's token and appends the
//! key's event (creation does not wait for the identity read model; a key's first use does,
//! if it must).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use sqlx::migrate::MigrateDatabase;
use support::{create_bare_table, env_or, measure, register_owner, run_bare, serve, serve_settings};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/agentry_bench_api".to_owned());
    let phase = Duration::from_secs(env_or("BENCH_SECONDS", 5));
    let rounds = env_or("BENCH_ROUNDS", 3);
    let clients = env_or("BENCH_CLIENTS", 16) as usize;
    let _ = sqlx::Postgres::drop_database(&url).await;

    let (address, stop) = serve(serve_settings(&url)).await;
    let pool = eventstore::database::connect(&url, clients as u32 + 4)
        .await
        .unwrap();
    create_bare_table(&pool).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let token = register_owner(&http, &address).await;
    // The raw limit's row carries an `api_key.created` event's bytes.
    let bare_payload = json!({ "type": "api_key.created", "org_id": uuid::Uuid::now_v7(), "name": "bench", "prefix": "abcdefgh", "key_hash": "x".repeat(64) });
    let bare_metadata = json!({ "actor": { "type": "user", "id": uuid::Uuid::now_v7() }, "org_id": uuid::Uuid::now_v7(), "request_id": uuid::Uuid::now_v7(), "correlation_id": uuid::Uuid::now_v7() });

    println!(
        "{clients} clients, {rounds} alternating rounds of {} s per phase\n",
        phase.as_secs()
    );
    println!("| round | bare INSERT+COMMIT /s | API keys created /s | ratio | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let (mut bare_sum, mut keys_sum, mut ratios) = (0.0, 0.0, Vec::new());
    let mut all = Histogram::<u64>::new(3).unwrap();
    for round in 1..=rounds {
        // Alternate the raw limit and the route so drift on a shared machine hits both alike.
        let bare = run_bare(&pool, clients, phase, &bare_payload, &bare_metadata).await;
        let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let keys = run_key_creation(&http, &address, &token, clients, phase, &latencies).await;
        let latencies = latencies.lock().unwrap();
        println!(
            "| {round} | {bare:.0} | {keys:.0} | {:.1}% | {:.1} | {:.1} |",
            100.0 * keys / bare,
            latencies.value_at_quantile(0.5) as f64 / 1e3,
            latencies.value_at_quantile(0.99) as f64 / 1e3,
        );
        all.add(&*latencies).unwrap();
        ratios.push(keys / bare);
        bare_sum += bare;
        keys_sum += keys;
    }
    let n = rounds as f64;
    let min = ratios.iter().copied().fold(f64::MAX, f64::min);
    let max = ratios.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "\nmean: bare {:.0}/s, API keys {:.0}/s, ratio {:.1}% ({:.1}–{:.1}%), p50 {:.1} ms, p99 {:.1} ms over {} requests",
        bare_sum / n,
        keys_sum / n,
        100.0 * keys_sum / bare_sum,
        100.0 * min,
        100.0 * max,
        all.value_at_quantile(0.5) as f64 / 1e3,
        all.value_at_quantile(0.99) as f64 / 1e3,
        all.len(),
    );
    let _ = stop.send(());
    pool.close().await;
}

/// `clients` HTTP clients each creating keys one after another; every answer must be 201.
async fn run_key_creation(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    clients: usize,
    phase: Duration,
    latencies: &Arc<Mutex<Histogram<u64>>>,
) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, count, stop, measuring) = (http.clone(), count.clone(), stop.clone(), measuring.clone());
        let (url, token, latencies) = (
            format!("{address}/v1/api-keys"),
            token.to_owned(),
            latencies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "name": "bench" }))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.bytes().await.unwrap();
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                if measuring.load(Ordering::Relaxed) {
                    let micros = started.elapsed().as_micros() as u64;
                    latencies.lock().unwrap().record(micros).unwrap();
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    measure(phase, &count, &stop, tasks, &measuring).await
}
