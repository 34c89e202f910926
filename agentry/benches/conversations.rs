//! Conversation creation over HTTP versus a bare INSERT + COMMIT, at the same client count, in
//! the same run (issue 12: creating a conversation must sustain at least half the raw limit).
//!
//! `cargo bench -p agentry --bench conversations` (needs Postgres). `BENCH_DATABASE_URL`
//! (default postgres://postgres@127.0.0.1:5432/agentry_bench_conversations, dropped and
//! recreated), `BENCH_SECONDS` per phase (default 5), `BENCH_ROUNDS` alternating rounds
//! (default 3), `BENCH_CLIENTS` (default 16), `BENCH_AGENTS` (default 1: every client starts
//! conversations with the same agent; with more, client `i` uses agent `i % BENCH_AGENTS`),
//! `BENCH_COUNT_TRANSACTIONS` (default 1: after the rounds, one more creation phase between
//! two readings of `pg_stat_database`, for the transactions each creation costs; 0 skips it),
//! `BENCH_LOAD` (default `reqwest`: the clients are reqwest tasks in this process, beside the
//! server; `wrk`: the `wrk` command, `BENCH_CLIENTS` connections on 2 threads, a load
//! generator in C whose own cost is a fraction of reqwest's, as the bare phase's clients are
//! plain sqlx calls; Debian's `wrk` package).
//!
//! The real application is built on port 0 as `agentry serve` builds it (pool of 32, relay and
//! projectors running) and spoken to by reqwest clients in this process: every
//! `POST /v1/conversations` authenticates the owner's token (its signature and expiry; the
//! caller's standing as the server last read it, without a query after the first) and appends
//! `conversation.created` pinned to the agent's version, which the server remembers too (the
//! append checks that both are still as remembered).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use sqlx::migrate::MigrateDatabase;

use support::{create_bare_table, env_or, measure, post, register_owner, run_bare, serve, serve_settings};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::database_url("agentry_bench_conversations");
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
    let mut agent_ids = Vec::new();
    for _ in 0..env_or("BENCH_AGENTS", 1).max(1) {
        let agent = post(
            &http,
            &address,
            &token,
            "/v1/agents",
            &json!({ "name": "Bench", "model": "echo", "system_prompt": "Answer briefly." }),
            201,
        )
        .await;
        agent_ids.push(agent["id"].as_str().unwrap().to_owned());
    }
    // A `conversation.created` payload and metadata, byte for byte the size of the real ones.
    let payload = json!({ "type": "conversation.created", "org_id": uuid::Uuid::now_v7(), "agent_id": uuid::Uuid::now_v7(), "agent_version": 1, "title": "Bench" });
    let metadata = json!({ "actor": format!("user:{}", uuid::Uuid::now_v7()), "org_id": uuid::Uuid::now_v7(), "request_id": uuid::Uuid::now_v7(), "correlation_id": uuid::Uuid::now_v7(), "recorded_at": chrono::Utc::now() });

    println!(
        "{clients} clients, {} agent(s), {rounds} alternating rounds of {} s per phase\n",
        agent_ids.len(),
        phase.as_secs()
    );
    println!("| round | bare INSERT+COMMIT /s | conversations created /s | ratio | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let (mut bare_sum, mut created_sum, mut ratios) = (0.0, 0.0, Vec::new());
    let mut all = Histogram::<u64>::new(3).unwrap();
    let use_wrk = match std::env::var("BENCH_LOAD").as_deref() {
        Ok("wrk") => true,
        Ok("reqwest") | Err(_) => false,
        Ok(other) => panic!("BENCH_LOAD is `reqwest` or `wrk`, not `{other}`"),
    };
    assert!(
        !use_wrk || agent_ids.len() == 1,
        "with wrk, every connection uses one agent"
    );
    // With wrk: each round's p50 and p99 (as wrk reports them) and its requests.
    let mut wrk_rounds: Vec<(f64, f64, u64)> = Vec::new();
    for round in 1..=rounds {
        // Alternate the raw limit and the route so drift on a shared machine hits both alike.
        let bare = run_bare(&pool, clients, phase, &payload, &metadata).await;
        let created = if use_wrk {
            let (created, p50, p99, requests) =
                run_wrk(&address, &token, &agent_ids[0], clients, phase).await;
            wrk_rounds.push((p50, p99, requests));
            (created, p50, p99)
        } else {
            let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
            let (created, _) =
                run_creation(&http, &address, &token, &agent_ids, clients, phase, &latencies).await;
            let latencies = latencies.lock().unwrap();
            all.add(&*latencies).unwrap();
            (
                created,
                quantile_ms(&latencies, 0.5),
                quantile_ms(&latencies, 0.99),
            )
        };
        let (created, p50, p99) = created;
        println!(
            "| {round} | {bare:.0} | {created:.0} | {:.1}% | {p50:.1} | {p99:.1} |",
            100.0 * created / bare,
        );
        ratios.push(created / bare);
        bare_sum += bare;
        created_sum += created;
    }
    let n = rounds as f64;
    let (p50, p99, measured) = if use_wrk {
        let mean = |pick: fn(&(f64, f64, u64)) -> f64| wrk_rounds.iter().map(pick).sum::<f64>() / n;
        (mean(|r| r.0), mean(|r| r.1), wrk_rounds.iter().map(|r| r.2).sum())
    } else {
        (quantile_ms(&all, 0.5), quantile_ms(&all, 0.99), all.len())
    };
    let min = ratios.iter().copied().fold(f64::MAX, f64::min);
    let max = ratios.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "\nmean: bare {:.0}/s, conversations {:.0}/s, ratio {:.1}% ({:.1}–{:.1}%), p50 {:.1} ms, p99 {:.1} ms over {} measured requests ({})",
        bare_sum / n,
        created_sum / n,
        100.0 * created_sum / bare_sum,
        100.0 * min,
        100.0 * max,
        p50,
        p99,
        measured,
        if use_wrk {
            "wrk: the rounds' mean p50 and p99"
        } else {
            "reqwest"
        },
    );
    if env_or("BENCH_COUNT_TRANSACTIONS", 1) == 1 && !use_wrk {
        // What the background loops commit over one reading's wait, and the reading itself.
        let idle = committed_transactions(&pool).await;
        let before = committed_transactions(&pool).await;
        let idle = before - idle;
        let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let (_, requests) =
            run_creation(&http, &address, &token, &agent_ids, clients, phase, &latencies).await;
        let after = committed_transactions(&pool).await;
        // Less what an idle wait and a reading commit (the reading after the phase waits too).
        let per_request = (after - before - idle) as f64 / requests as f64;
        println!(
            "transactions committed per conversation created: {per_request:.2} ({requests} requests; the application's background loops at work included, {idle} over an idle wait taken out; a bare INSERT is 1)"
        );
    }
    let _ = stop.send(());
    pool.close().await;
}

/// Transactions committed in the bench database so far, once every backend has reported
/// (they report at most once a second, and an idle one only after 10 s).
async fn committed_transactions(pool: &sqlx::PgPool) -> i64 {
    tokio::time::sleep(Duration::from_secs(11)).await;
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `clients` HTTP clients each creating conversations one after another; every answer must be
/// 201.
async fn run_creation(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    agent_ids: &[String],
    clients: usize,
    phase: Duration,
    latencies: &Arc<Mutex<Histogram<u64>>>,
) -> (f64, u64) {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, count, stop, measuring) = (http.clone(), count.clone(), stop.clone(), measuring.clone());
        let (url, token, latencies) = (
            format!("{address}/v1/conversations"),
            token.to_owned(),
            latencies.clone(),
        );
        let agent_id = &agent_ids[client % agent_ids.len()];
        let body = json!({ "agent_id": agent_id, "title": "Bench" });
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let answer = response.bytes().await.unwrap();
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
                if measuring.load(Ordering::Relaxed) {
                    let micros = started.elapsed().as_micros() as u64;
                    latencies.lock().unwrap().record(micros).unwrap();
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let rate = measure(phase, &count, &stop, tasks, &measuring).await;
    (rate, count.load(Ordering::Relaxed))
}

fn quantile_ms(latencies: &Histogram<u64>, quantile: f64) -> f64 {
    latencies.value_at_quantile(quantile) as f64 / 1e3
}

/// `wrk` creating conversations with `agent_id` over `clients` connections for `phase`, after a
/// second of warm-up (its connections opened, the server's caches warm): conversations per
/// second, p50 and p99 ms as `wrk` records them, and the requests made. Every answer must be
/// 201: `wrk` counts any status from 400 as an error, and the phase fails on one.
async fn run_wrk(
    address: &str,
    token: &str,
    agent_id: &str,
    clients: usize,
    phase: Duration,
) -> (f64, f64, f64, u64) {
    let script = std::env::temp_dir().join(format!("agentry-bench-{}.lua", std::process::id()));
    let body = json!({ "agent_id": agent_id, "title": "Bench" }).to_string();
    let lua = format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.body = '{body}'
done = function(summary, latency, requests)
  io.write(string.format("bench: %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99), 0))
end
"#
    );
    std::fs::write(&script, lua).unwrap();
    let url = format!("{address}/v1/conversations");
    let wrk = |seconds: u64| {
        let (script, url) = (script.clone(), url.clone());
        let connections = clients.to_string();
        async move {
            let output = tokio::process::Command::new("wrk")
                .args(["-t2", "-c", &connections, "-d", &format!("{seconds}s"), "-s"])
                .arg(&script)
                .arg(&url)
                .output()
                .await
                .expect("running wrk (Debian's `wrk` package)");
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    wrk(1).await;
    let report = wrk(phase.as_secs().max(1)).await;
    let _ = std::fs::remove_file(&script);
    let line = report
        .lines()
        .find_map(|line| line.strip_prefix("bench: "))
        .unwrap_or_else(|| panic!("no summary from wrk:\n{report}"));
    let numbers: Vec<u64> = line.split(' ').map(|n| n.parse().unwrap()).collect();
    let [requests, micros, refused, failed, p50, p99, _] = numbers[..] else {
        panic!("unexpected wrk summary: {line}");
    };
    assert_eq!(
        (refused, failed),
        (0, 0),
        "answers not 201, connection errors:\n{report}"
    );
    let rate = requests as f64 / (micros as f64 / 1e6);
    (rate, p50 as f64 / 1e3, p99 as f64 / 1e3, requests)
}
