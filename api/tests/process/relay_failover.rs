//! A relay leader frozen by SIGSTOP loses its lease: the other node takes over within a stated
//! bound, the frozen one publishes nothing when it wakes, and the relay checkpoint never moves
//! backwards. Publishes are counted raw (a core NATS subscription sees every publish,
//! duplicates included, which JetStream's duplicate window would hide).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use testkit::PrivateNats;
use uuid::Uuid;

use crate::node::{Node, database_url, drop_database, install_crypto_provider, register};

/// How long after a write, with the leader frozen, its events may take to reach NATS: the
/// lease expires 5 s after the last renewal, a standby tries every second, and the machine
/// running the tests may be loaded.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

/// Every event id the relay published, with how many times, as a core subscriber sees them.
type RawCounts = Arc<Mutex<HashMap<String, usize>>>;

async fn count_raw_publishes(nats_url: &str) -> RawCounts {
    let client = async_nats::connect(nats_url).await.unwrap();
    let mut subscription = client.subscribe("agentry.*.events.>").await.unwrap();
    client.flush().await.unwrap();
    let counts = RawCounts::default();
    let sink = Arc::clone(&counts);
    tokio::spawn(async move {
        let _client = client;
        while let Some(message) = subscription.next().await {
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            let id = event["id"].as_str().unwrap().to_owned();
            *sink.lock().unwrap().entry(id).or_insert(0) += 1;
        }
    });
    counts
}

/// Every `(transaction_id, position)` the relay checkpoint showed, sampled every 20 ms.
fn watch_checkpoint(pool: sqlx::PgPool) -> Arc<Mutex<Vec<(u64, i64)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let row: Option<(String, i64)> = sqlx::query_as(
                "SELECT transaction_id::text, position FROM follower_checkpoints WHERE name = 'relay'",
            )
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
            if let Some((transaction_id, position)) = row {
                sink.lock()
                    .unwrap()
                    .push((transaction_id.parse().unwrap(), position));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

async fn stored_ids(pool: &sqlx::PgPool) -> HashSet<String> {
    sqlx::query_scalar::<_, Uuid>("SELECT event_id FROM events")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect()
}

/// Waits until every stored event was published at least once; returns how long that took.
async fn wait_all_published(pool: &sqlx::PgPool, counts: &RawCounts, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let stored = stored_ids(pool).await;
        let missing = {
            let counts = counts.lock().unwrap();
            stored.iter().filter(|id| !counts.contains_key(*id)).count()
        };
        if missing == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{missing} of {} events not on NATS after {within:?}",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(node: &Node, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(node.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_relay_leader_is_replaced_and_every_event_is_published_exactly_once() {
    install_crypto_provider();
    let nats = PrivateNats::start();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let env = [("DATABASE_URL", database_url(&name)), ("NATS_URL", nats.url())];
    let counts = count_raw_publishes(&nats.url()).await;
    let first = Node::serve(&env);
    let second = Node::serve(&env);
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    let checkpoints = watch_checkpoint(pool.clone());
    let client = reqwest::Client::new();

    register(&client, &first.url(""), 0).await.expect("registered");
    wait_all_published(&pool, &counts, Duration::from_secs(30)).await;
    let (leader, standby) = if first.log_contains("relay publishing") {
        (first, second)
    } else {
        (second, first)
    };
    assert!(leader.log_contains("relay publishing"), "one node leads");

    signal(&leader, "STOP");
    for n in 1..4 {
        register(&client, &standby.url(""), n)
            .await
            .expect("the standby serves writes");
    }
    let took = wait_all_published(&pool, &counts, TAKEOVER_BOUND).await;
    eprintln!("events written while the leader was frozen reached NATS {took:?} after the writes");

    signal(&leader, "CONT");
    for n in 4..7 {
        register(&client, &leader.url(""), n)
            .await
            .expect("the woken node serves");
        register(&client, &standby.url(""), n + 10)
            .await
            .expect("the standby serves");
    }
    wait_all_published(&pool, &counts, Duration::from_secs(30)).await;
    // Give a woken leader that wrongly relays the time to show it.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stored = stored_ids(&pool).await;
    let counts = counts.lock().unwrap().clone();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "published more than once: {twice:?}");
    let published: HashSet<String> = counts.keys().cloned().collect();
    assert_eq!(published, stored, "each stored event published, nothing else");
    let checkpoints = checkpoints.lock().unwrap().clone();
    assert!(
        checkpoints.windows(2).all(|pair| pair[0] <= pair[1]),
        "the relay checkpoint moved backwards: {checkpoints:?}"
    );
    pool.close().await;
    leader.terminate();
    standby.terminate();
    drop_database(&name).await;
}
