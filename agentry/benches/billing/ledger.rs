//! The ledger alone: reserve + settle pairs timed directly against [`BillingService`] (its own
//! instance over its own pool, as a node holds one), next to a bare single-row INSERT (the raw
//! limit of one durable row per transaction) timed the same way.
//!
//! Each operation's time splits at its event's `recorded_at` stamp, which the command bus takes
//! inside the account's lock just before the append: *call → stamp* is the wait for the
//! account's lock (plus deciding on the state in memory), *stamp → answer* the append (a round
//! trip and a commit, with the pool's ping) and what follows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use commands::billing::{BillingService, ReserveOutcome};
use eventstore::CommandContext;
use hdrhistogram::Histogram;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::measure;

/// What a reservation holds per call here (about a call's worst case in the runs).
const WORST_CASE: u64 = 10_000;
/// What a call is charged.
const ACTUAL: u64 = 3_000;

/// One pair's moments, by the bench's clock (the one `recorded_at` uses).
struct Pair {
    key: String,
    reserve_called: DateTime<Utc>,
    reserve_answered: DateTime<Utc>,
    settle_called: DateTime<Utc>,
    settle_answered: DateTime<Utc>,
}

/// One phase's figures, in microseconds.
pub struct Figures {
    pub pairs_per_second: f64,
    pub pair: Histogram<u64>,
    pub reserve: Histogram<u64>,
    pub settle: Histogram<u64>,
    /// Call → the event's stamp (the account's lock), reserve and settle pooled.
    pub lock_wait: Histogram<u64>,
    /// The event's stamp → the answer (the append), reserve and settle pooled.
    pub append: Histogram<u64>,
}

/// One phase's bare INSERTs: latency per statement, statements per second.
pub struct Bare {
    pub per_second: f64,
    pub latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap()
}

fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_microseconds().unwrap_or(0).max(0) as u64
}

/// One task per entry of `orgs`, each reserving and settling calls of its own run on that
/// organization's account, one pair after another, for `seconds` after a warm-up.
pub async fn pairs(
    billing: &Arc<BillingService>,
    pool: &PgPool,
    orgs: &[Uuid],
    seconds: Duration,
) -> Figures {
    let since = crate::runs::last_position(pool).await;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for &org_id in orgs {
        let (billing, count, stop, measuring, pairs) = (
            Arc::clone(billing),
            count.clone(),
            stop.clone(),
            measuring.clone(),
            pairs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let run_id = Uuid::now_v7();
            let mut context = CommandContext::system(Some(org_id));
            context.correlation_id = run_id;
            let mut step = 0;
            while !stop.load(Ordering::Relaxed) {
                step += 1;
                let started_measuring = measuring.load(Ordering::Relaxed);
                let pair = one_pair(&billing, org_id, run_id, step, &context).await;
                if started_measuring && measuring.load(Ordering::Relaxed) {
                    pairs.lock().unwrap().push(pair);
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let pairs_per_second = measure(seconds, &count, &stop, tasks, &measuring).await;
    let pairs = std::mem::take(&mut *pairs.lock().unwrap());
    figures(pool, since, &pairs, pairs_per_second).await
}

async fn one_pair(
    billing: &BillingService,
    org_id: Uuid,
    run_id: Uuid,
    step: u64,
    context: &CommandContext,
) -> Pair {
    let key = format!("{run_id}/{step}");
    let reserve_called = Utc::now();
    let outcome = billing
        .reserve(org_id, run_id, &key, WORST_CASE, context)
        .await
        .unwrap();
    let reserve_answered = Utc::now();
    assert!(
        matches!(outcome, ReserveOutcome::Reserved(_)),
        "{key}: {outcome:?}"
    );
    let settle_called = Utc::now();
    let settlement = billing
        .settle(org_id, &key, ACTUAL, false, context)
        .await
        .unwrap();
    let settle_answered = Utc::now();
    assert!(!settlement.replayed, "{key} settled twice");
    Pair {
        key,
        reserve_called,
        reserve_answered,
        settle_called,
        settle_answered,
    }
}

/// The pairs' times, split at their events' stamps.
async fn figures(pool: &PgPool, since: i64, pairs: &[Pair], pairs_per_second: f64) -> Figures {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT payload ->> 'llm_call', event_type, metadata ->> 'recorded_at' FROM events
          WHERE position > $1 AND event_type IN ('credit_account.reserved', 'credit_account.charged')",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut stamps: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    for (key, event_type, recorded_at) in rows {
        let at = DateTime::parse_from_rfc3339(&recorded_at)
            .unwrap()
            .with_timezone(&Utc);
        stamps.insert((key, event_type), at);
    }
    let mut figures = Figures {
        pairs_per_second,
        pair: histogram(),
        reserve: histogram(),
        settle: histogram(),
        lock_wait: histogram(),
        append: histogram(),
    };
    for pair in pairs {
        figures
            .pair
            .record(micros(pair.reserve_called, pair.settle_answered))
            .unwrap();
        figures
            .reserve
            .record(micros(pair.reserve_called, pair.reserve_answered))
            .unwrap();
        figures
            .settle
            .record(micros(pair.settle_called, pair.settle_answered))
            .unwrap();
        let operations = [
            (
                "credit_account.reserved",
                pair.reserve_called,
                pair.reserve_answered,
            ),
            ("credit_account.charged", pair.settle_called, pair.settle_answered),
        ];
        for (event_type, called, answered) in operations {
            let stamp = stamps
                .get(&(pair.key.clone(), event_type.to_owned()))
                .unwrap_or_else(|| panic!("{} has no {event_type}", pair.key));
            figures.lock_wait.record(micros(called, *stamp)).unwrap();
            figures.append.record(micros(*stamp, answered)).unwrap();
        }
    }
    figures
}

/// `clients` connections each inserting one row per autocommit transaction, timed one by one
/// (the same statement as the runs bench's raw limit).
pub async fn bare(pool: &PgPool, clients: usize, seconds: Duration) -> Bare {
    let payload = serde_json::json!({ "type": "credit_account.reserved", "reservation_id": Uuid::now_v7(), "run_id": Uuid::now_v7(), "llm_call": format!("{}/1", Uuid::now_v7()), "credits": WORST_CASE }).to_string();
    let metadata = serde_json::json!({ "actor": "system", "org_id": Uuid::now_v7(), "correlation_id": Uuid::now_v7(), "recorded_at": Utc::now() }).to_string();
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(Mutex::new(histogram()));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (pool, count, stop, measuring, latency) = (
            pool.clone(),
            count.clone(),
            stop.clone(),
            measuring.clone(),
            latency.clone(),
        );
        let (payload, metadata) = (payload.clone(), metadata.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("bare-{client}");
            let mut own = histogram();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                sqlx::query("INSERT INTO bare (aggregate_id, payload, metadata) VALUES ($1, $2::text::json, $3::text::json)")
                    .bind(&id)
                    .bind(&payload)
                    .bind(&metadata)
                    .execute(&pool)
                    .await
                    .unwrap();
                if measuring.load(Ordering::Relaxed) {
                    own.record(started.elapsed().as_micros() as u64).unwrap();
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            latency.lock().unwrap().add(own).unwrap();
        }));
    }
    let per_second = measure(seconds, &count, &stop, tasks, &measuring).await;
    let latency = latency.lock().unwrap().clone();
    Bare { per_second, latency }
}
