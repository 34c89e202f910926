//! Append throughput through the real command path versus a bare INSERT + COMMIT, and relay lag.
//!
//! `cargo bench -p eventstore --bench append` (needs Postgres; NATS for the lag phase).
//! `BENCH_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/agentry_bench, recreated),
//! `BENCH_NATS_URL` (default nats://127.0.0.1:4222), `BENCH_SECONDS` per phase (default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::organization::{Organization, OrganizationCommand};
use eventstore::relay::NatsBus;
use eventstore::{CommandBus, CommandContext, EventBus, EventStore, Relay, database};
use futures::StreamExt;
use hdrhistogram::Histogram;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WRITERS: [usize; 3] = [1, 4, 16];

#[tokio::main]
async fn main() {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/agentry_bench".to_owned());
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let phase = Duration::from_secs(seconds);
    use sqlx::migrate::MigrateDatabase;
    let _ = sqlx::Postgres::drop_database(&url).await;
    let pool = database::prepare(&url, 40).await.expect("bench database");
    sqlx::query("CREATE TABLE bare (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, aggregate_id text, payload json, metadata json)")
        .execute(&pool)
        .await
        .unwrap();
    let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
    let sample = sample_sizes();
    println!(
        "payload ≈ {} B, metadata ≈ {} B, {seconds} s per phase\n",
        sample.0.len(),
        sample.1.len()
    );
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!("{rounds} alternating rounds per writer count; rates are means, ratios min–max over rounds\n");
    println!(
        "| writers | bare INSERT+COMMIT /s | command path events/s | ratio (mean, min–max) | 2-event command: commands/s | events/s |"
    );
    println!("|---|---|---|---|---|---|");
    let mut peak = 0.0;
    let lag_only: Option<f64> = std::env::var("BENCH_LAG_RATE").ok().and_then(|r| r.parse().ok());
    for writers in WRITERS.into_iter().filter(|_| lag_only.is_none()) {
        // Alternate the raw limit and our path so drift on a shared machine hits both alike.
        let (mut bare, mut ours, mut creates, mut ratios) = (0.0, 0.0, 0.0, Vec::new());
        for _ in 0..rounds {
            let bare_rate = run_bare(&pool, writers, phase, &sample).await;
            let our_rate = run_commands(&store, writers, phase).await;
            creates += run_creates(&store, writers, phase).await.0;
            ratios.push(our_rate / bare_rate);
            bare += bare_rate;
            ours += our_rate;
        }
        let n = rounds as f64;
        let (bare, ours, creates) = (bare / n, ours / n, creates / n);
        let min = ratios.iter().copied().fold(f64::MAX, f64::min);
        let max = ratios.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "| {writers} | {bare:.0} | {ours:.0} | {:.0}% ({:.0}–{:.0}%) | {creates:.0} | {:.0} |",
            100.0 * ours / bare,
            100.0 * min,
            100.0 * max,
            creates * 2.0
        );
        peak = ours;
    }
    let nats = std::env::var("BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    relay_lag(&pool, &store, &nats, lag_only.unwrap_or(peak / 2.0), phase).await;
}

/// The same bytes as an event row: the renamed payload and a command's metadata.
fn sample_sizes() -> (String, String) {
    let payload = serde_json::json!({ "type": "organization.renamed", "name": "x".repeat(99) }).to_string();
    let metadata = serde_json::to_string(&context().to_metadata()).unwrap();
    (payload, metadata)
}

fn context() -> CommandContext {
    let mut context = CommandContext::system(Some(Uuid::now_v7()));
    context.request = Some(eventstore::RequestOrigin::id_only(Uuid::now_v7().to_string()));
    context.causation_id = Some(Uuid::now_v7());
    context
}

async fn run_bare(pool: &PgPool, writers: usize, phase: Duration, sample: &(String, String)) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (pool, count, stop, sample) = (pool.clone(), count.clone(), stop.clone(), sample.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("bare-{writer}");
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("INSERT INTO bare (aggregate_id, payload, metadata) VALUES ($1, $2::text::json, $3::text::json)")
                    .bind(&id)
                    .bind(&sample.0)
                    .bind(&sample.1)
                    .execute(&pool)
                    .await
                    .unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    measure(phase, &count, &stop, tasks).await
}

/// Each writer renames its own organization again and again: the hot path of a cached aggregate.
async fn run_commands(store: &EventStore, writers: usize, phase: Duration) -> f64 {
    let bus = Arc::new(CommandBus::<Organization>::new(store.clone(), ()));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (bus, count, stop) = (bus.clone(), count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let id = Uuid::now_v7().to_string();
            let create = OrganizationCommand::CreateOrganization {
                name: "Bench".into(),
                owner_user_id: Uuid::new_v4(),
            };
            bus.create(&id, create, &context()).await.unwrap();
            let name = "x".repeat(98);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let rename = OrganizationCommand::RenameOrganization {
                    name: format!("{name}{}", n % 2),
                };
                let committed = bus.execute(&id, rename, &context()).await.unwrap();
                count.fetch_add(committed.appended.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    measure(phase, &count, &stop, tasks).await
}

/// Each command creates a new organization: two events (created, owner added) in one round trip.
async fn run_creates(store: &EventStore, writers: usize, phase: Duration) -> (f64, f64) {
    let bus = Arc::new(CommandBus::<Organization>::new(store.clone(), ()));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (bus, count, stop) = (bus.clone(), count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let create = OrganizationCommand::CreateOrganization {
                    name: "Bench".into(),
                    owner_user_id: Uuid::new_v4(),
                };
                bus.create(&Uuid::now_v7().to_string(), create, &context())
                    .await
                    .unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let commands = measure(phase, &count, &stop, tasks).await;
    (commands, commands * 2.0)
}

async fn measure(
    phase: Duration,
    count: &AtomicU64,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> f64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_count = count.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(phase).await;
    let done = count.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    done as f64 / elapsed
}

/// Appends at `rate` events/s with 16 writers while the relay publishes to JetStream; the lag
/// of each event is from its append returning (committed) to its arrival at a NATS subscriber,
/// which is after the JetStream ack, so it is an upper bound of commit-to-ack.
async fn relay_lag(pool: &PgPool, store: &EventStore, nats_url: &str, rate: f64, phase: Duration) {
    // Let the server settle after the throughput phases (a checkpoint and autovacuum in the
    // middle of this phase would be measured as relay lag).
    for statement in ["CHECKPOINT", "VACUUM ANALYZE events", "VACUUM ANALYZE bare"] {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    let bus = NatsBus::connect(nats_url).await.expect("NATS");
    // Start the relay at the end of the log so the earlier phases' events are not in the way.
    let (head_tx, head_pos): (String, i64) = sqlx::query_as(
        "SELECT COALESCE(max(transaction_id)::text, '0'), COALESCE(max(position), 0) FROM events",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO follower_checkpoints (name, transaction_id, position) VALUES ('bench-relay', $1::text::xid8, $2)")
        .bind(head_tx)
        .bind(head_pos)
        .execute(pool)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let relay = Relay::new(store, EventBus::from(bus.clone())).with_name("bench-relay");
    tokio::spawn(relay.run(shutdown.clone()));
    let org = Uuid::now_v7();
    let mut subscription = bus
        .client()
        .subscribe(format!("agentry.{org}.events.>"))
        .await
        .unwrap();
    let committed: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let (committed_rx, histogram_rx) = (committed.clone(), histogram.clone());
    let receiver = tokio::spawn(async move {
        let mut early: HashMap<Uuid, Instant> = HashMap::new();
        while let Some(message) = subscription.next().await {
            let arrived = Instant::now();
            let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            let id: Uuid = event["id"].as_str().unwrap().parse().unwrap();
            let sent = committed_rx.lock().unwrap().remove(&id);
            match sent {
                Some(sent) => histogram_rx
                    .lock()
                    .unwrap()
                    .record(arrived.duration_since(sent).as_micros() as u64)
                    .unwrap(),
                None => {
                    early.insert(id, arrived);
                }
            }
        }
    });
    let writers = 16;
    let stop = Arc::new(AtomicBool::new(false));
    let per_writer = Duration::from_secs_f64(writers as f64 / rate.max(1.0));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, stop, committed) = (store.clone(), stop.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            let bus = CommandBus::<Organization>::new(store, ());
            let id = Uuid::now_v7().to_string();
            let mut context = context();
            context.org_id = Some(org);
            let create = OrganizationCommand::CreateOrganization {
                name: "Lag".into(),
                owner_user_id: Uuid::new_v4(),
            };
            bus.create(&id, create, &context).await.unwrap();
            let mut ticker = tokio::time::interval(per_writer);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                n += 1;
                let rename = OrganizationCommand::RenameOrganization {
                    name: format!("lag {n}"),
                };
                let done = bus.execute(&id, rename, &context).await.unwrap();
                let now = Instant::now();
                let mut map = committed.lock().unwrap();
                for appended in done.appended {
                    map.insert(appended.event_id, now);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    histogram.lock().unwrap().reset();
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    receiver.abort();
    let histogram = histogram.lock().unwrap();
    println!(
        "\nrelay lag (commit → NATS subscriber) at {rate:.0} events/s target, {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        histogram.len(),
        histogram.value_at_quantile(0.5) as f64 / 1e3,
        histogram.value_at_quantile(0.99) as f64 / 1e3,
        histogram.max() as f64 / 1e3,
    );
}
