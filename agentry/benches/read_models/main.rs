//! Read models and audit over a million events (issue 14, "Speed"): the conversation view's
//! rebuild, `agentry audit verify` and the audit export, each next to its raw limit measured in
//! the same run (the same rows read by one bare `SELECT` in the order the path reads them).
//!
//! `cargo bench -p agentry --bench read_models` (needs Postgres). `BENCH_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/agentry_bench_read_models, dropped and recreated),
//! `BENCH_EVENTS` (default 1,000,000; a smaller log for a quick run), `BENCH_ROUNDS` (default 2),
//! `BENCH_AUDIT_PROJECTOR_SECONDS` (default 20: how long the real audit projector seals before
//! the rest is sealed in memory by the same code, see `seal.rs`), `BENCH_REUSE=1` (measure the
//! database an earlier run left, without setting it up again), `BENCH_PHASES=1` (then time the
//! rebuild's phases, see `phases.rs`).
//!
//! Setup: the real application registers four owners (four organizations, an agent each) and is
//! stopped once every follower has passed those events; then the generated log (`generate.rs`:
//! conversations with runs, as the executor records them) is written with one transaction per
//! command (`load.rs`), `VACUUM ANALYZE`d, sealed into the audit log, and every follower's
//! checkpoint is put at its end (so the restarted application's background loops are idle).
//! Measured, per round, with the application serving: the bare read of the events; the real
//! `projections::rebuild::rebuild` of `conversations`; the bare read of the audit entries;
//! `agentry::audit_verify::verify_audit_chains` (what `agentry audit verify` runs); and
//! `GET /v1/audit/export` of every organization, read to the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod generate;
mod load;
mod measure;
mod phases;
mod seal;

use std::time::{Duration, Instant};

use agentry::settings::Settings;
use agentry::startup::{Application, background_projectors};
use eventstore::EventStore;
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use tokio::task::JoinHandle;
use uuid::Uuid;

use generate::Org;
use measure::Timed;
use support::{env_or, post, serve_settings};

const PASSWORD: &str = "correct horse battery staple";
/// The organizations' shares of the conversations.
const WEIGHTS: [u32; 4] = [40, 30, 20, 10];

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::database_url("agentry_bench_read_models");
    let rounds = env_or("BENCH_ROUNDS", 2);
    let settings = serve_settings(&url);
    let http = reqwest::Client::new();
    println!("load average at the start: {}", load_average());
    if std::env::var("BENCH_REUSE").is_ok_and(|value| value == "1") {
        println!("reusing the database of an earlier run\n");
    } else {
        set_up(&url, &settings, &http).await;
    }
    let pool = eventstore::database::connect(&url, 8).await.unwrap();
    let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
    let (address, stop, served) = serve(settings).await;
    let auditors = log_in(&http, &address).await;
    wait_until_quiet(&pool).await;
    let mut results = Vec::new();
    for round in 1..=rounds {
        let result = run_round(&store, &http, &address, &auditors).await;
        report_round(round, &result);
        results.push(result);
    }
    println!("load average at the end: {}\n", load_average());
    print_table(&results);
    if std::env::var("BENCH_PHASES").is_ok_and(|value| value == "1") {
        phases::profile(&store).await;
    }
    let _ = stop.send(());
    served.await.unwrap();
    pool.close().await;
}

/// A fresh database holding the generated log (`BENCH_EVENTS`) and its audit log, every
/// follower's checkpoint at its end.
async fn set_up(url: &str, settings: &Settings, http: &reqwest::Client) {
    let target = env_or("BENCH_EVENTS", 1_000_000);
    let audit_budget = Duration::from_secs(env_or("BENCH_AUDIT_PROJECTOR_SECONDS", 20));
    let _ = sqlx::Postgres::drop_database(url).await;
    let setup = Instant::now();
    let (address, stop, served) = serve(settings.clone()).await;
    let orgs = register_owners(http, &address).await;
    let pool = eventstore::database::connect(url, 8).await.unwrap();
    wait_for_followers(&pool).await;
    let _ = stop.send(());
    served.await.unwrap();

    let loaded = load::load(url, orgs, target).await;
    println!(
        "loaded {} events in {} commands (one transaction each) in {:.1} s ({:.0} events/s)",
        loaded.events,
        loaded.commands,
        loaded.elapsed.as_secs_f64(),
        loaded.events as f64 / loaded.elapsed.as_secs_f64()
    );
    vacuum(&pool, "events").await;
    let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
    let sealed = seal::seal_all(&store, audit_budget).await;
    let (projected, projector_time) = sealed.by_projector;
    let (continued, continued_time) = sealed.continued;
    println!(
        "audit log: the audit projector (ProjectionRunner::step) sealed {projected} entries in {:.1} s ({:.0}/s); \
         the same sealing code in memory sealed the other {continued} in {:.1} s",
        projector_time.as_secs_f64(),
        projected as f64 / projector_time.as_secs_f64(),
        continued_time.as_secs_f64()
    );
    vacuum(&pool, "audit_entries").await;
    followers_to_head(&pool).await;
    pool.close().await;
    println!("setup took {:.0} s\n", setup.elapsed().as_secs_f64());
}

/// The real application on port 0, with the handle that ends when it has stopped (background
/// loops included).
async fn serve(settings: Settings) -> (String, tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let application = Application::build(settings)
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let _ = application
            .run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (address, stop, served)
}

/// An owner per organization, registered over HTTP, with an agent each.
async fn register_owners(http: &reqwest::Client, address: &str) -> Vec<Org> {
    let mut orgs = Vec::new();
    for (index, weight) in WEIGHTS.into_iter().enumerate() {
        let registration = json!({
            "email": format!("owner{index}@example.com"), "password": PASSWORD, "org_name": format!("Org {index}"),
        });
        let registered = post(http, address, "", "/v1/auth/register", &registration, 201).await;
        let token = registered["access_token"].as_str().unwrap();
        let agent = json!({ "name": "Support", "model": "echo", "system_prompt": "Answer briefly." });
        let agent = post(http, address, token, "/v1/agents", &agent, 201).await;
        let id = |value: &serde_json::Value| value.as_str().unwrap().parse::<Uuid>().unwrap();
        orgs.push(Org {
            id: id(&registered["org_id"]),
            owner: id(&registered["user_id"]),
            agent_id: id(&agent["id"]),
            weight,
        });
    }
    orgs
}

/// Each owner's access token for their organization (their only one), after a login.
async fn log_in(http: &reqwest::Client, address: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for index in 0..WEIGHTS.len() {
        let login = json!({ "email": format!("owner{index}@example.com"), "password": PASSWORD });
        let answer = post(http, address, "", "/v1/auth/login", &login, 200).await;
        tokens.push(answer["access_token"].as_str().unwrap().to_owned());
    }
    tokens
}

/// The log's last cursor, as text `(transaction_id, position)`.
async fn head(pool: &PgPool) -> (String, i64) {
    sqlx::query_as(
        "SELECT transaction_id::text, position FROM events
          ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until the relay and every projector have passed the log's last event.
async fn wait_for_followers(pool: &PgPool) {
    let (transaction_id, position) = head(pool).await;
    let names = follower_names();
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM UNNEST($1::text[]) AS n(name)
              WHERE NOT EXISTS (SELECT 1 FROM follower_checkpoints c WHERE c.name = n.name
                                  AND (c.transaction_id, c.position) >= ($2::text::xid8, $3))",
        )
        .bind(&names)
        .bind(&transaction_id)
        .bind(position)
        .fetch_one(pool)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn follower_names() -> Vec<String> {
    let mut names: Vec<String> = background_projectors()
        .iter()
        .map(|projector| projector.name().to_owned())
        .collect();
    names.push(eventstore::relay::RELAY_NAME.to_owned());
    names
}

/// Every follower's checkpoint at the log's end: the loaded log counts as already followed.
async fn followers_to_head(pool: &PgPool) {
    let (transaction_id, position) = head(pool).await;
    sqlx::query(
        "INSERT INTO follower_checkpoints (name, transaction_id, position, updated_at)
         SELECT name, $2::text::xid8, $3, now() FROM UNNEST($1::text[]) AS n(name)
         ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position",
    )
    .bind(follower_names())
    .bind(&transaction_id)
    .bind(position)
    .execute(pool)
    .await
    .unwrap();
}

/// Waits until no other session of the application runs a statement (the restarted
/// application's look for unfinished runs reads the log once).
async fn wait_until_quiet(pool: &PgPool) {
    let mut quiet = 0;
    while quiet < 5 {
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        quiet = if active == 0 { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The machine's 1, 5 and 15 minute load averages (other builds and benches share it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn vacuum(pool: &PgPool, table: &str) {
    let started = Instant::now();
    sqlx::raw_sql(&format!("VACUUM (ANALYZE) {table}"))
        .execute(pool)
        .await
        .unwrap();
    println!(
        "VACUUM (ANALYZE) {table}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// One round's figures.
struct Round {
    bare_events: Timed,
    rebuild: Timed,
    bare_audit: Timed,
    verify: Timed,
    export: Timed,
}

async fn run_round(store: &EventStore, http: &reqwest::Client, address: &str, auditors: &[String]) -> Round {
    let pool = store.pool();
    let (bare_events, event_bytes) = measure::bare_events(pool).await;
    eprintln!(
        "bare SELECT of events: {} rows, {event_bytes} bytes",
        bare_events.count
    );
    let rebuild = measure::rebuild(store).await;
    let (bare_audit, audit_bytes) = measure::bare_audit(pool).await;
    eprintln!(
        "bare SELECT of audit entries: {} rows, {audit_bytes} bytes",
        bare_audit.count
    );
    let verify = measure::verify(pool).await;
    let (export, export_bytes) = measure::export(http, address, auditors).await;
    eprintln!("export: {} lines, {export_bytes} bytes", export.count);
    assert_eq!(rebuild.count, bare_events.count, "the rebuild folds every event");
    assert_eq!(verify.count, bare_audit.count, "verify checks every entry");
    assert_eq!(export.count, bare_audit.count, "the export has every entry");
    Round {
        bare_events,
        rebuild,
        bare_audit,
        verify,
        export,
    }
}

fn report_round(round: u64, result: &Round) {
    let seconds = |timed: &Timed| timed.elapsed.as_secs_f64();
    eprintln!(
        "round {round}: bare events {:.1} s, rebuild {:.1} s, bare audit {:.1} s, verify {:.1} s, export {:.1} s",
        seconds(&result.bare_events),
        seconds(&result.rebuild),
        seconds(&result.bare_audit),
        seconds(&result.verify),
        seconds(&result.export)
    );
}

fn print_table(results: &[Round]) {
    println!(
        "| round | bare SELECT events/s | conversations rebuild events/s | ratio | bare SELECT entries/s | audit verify entries/s | ratio | export entries/s | ratio | export / verify |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (index, round) in results.iter().enumerate() {
        let ratio = |path: &Timed, raw: &Timed| 100.0 * path.rate() / raw.rate();
        println!(
            "| {} | {:.0} | {:.0} | {:.1}% | {:.0} | {:.0} | {:.1}% | {:.0} | {:.1}% | {:.0}% |",
            index + 1,
            round.bare_events.rate(),
            round.rebuild.rate(),
            ratio(&round.rebuild, &round.bare_events),
            round.bare_audit.rate(),
            round.verify.rate(),
            ratio(&round.verify, &round.bare_audit),
            round.export.rate(),
            ratio(&round.export, &round.bare_audit),
            ratio(&round.export, &round.verify),
        );
    }
}
