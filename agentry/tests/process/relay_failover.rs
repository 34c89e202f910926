//! A relay leader frozen by SIGSTOP loses its lease: the other node takes over within a stated
//! bound, the frozen one publishes nothing when it wakes, JetStream stores every event once,
//! and the relay checkpoint never moves backwards. Publishes are also counted raw (a core NATS
//! subscription sees every publish, duplicates included, which JetStream's duplicate window
//! hides), each copy with the lease epoch that sent it (`Agentry-Relay-Epoch`): the only raw
//! repeats allowed are what the old leader sent after its last checkpoint, sent once more by
//! the new one (docs/events.md says so to subscribers).
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

/// How long after the leader froze the standby may take to start publishing: the lease expires
/// 5 s after its last renewal and a standby tries every second (about 6 s at worst, plus a
/// loaded machine).
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);
/// How long after the freeze the events written meanwhile may take to reach NATS. Longer than
/// the takeover: the writes wait for the identity view (whose projector lease the frozen node
/// may hold too), and on a Postgres cluster shared with other test suites their open writing
/// transactions hold every follower's gate for a while (measured here: 5 s typically).
const DELIVERY_BOUND: Duration = Duration::from_secs(30);

/// One copy of an event as a core subscriber saw it: when, and from which lease epoch.
#[derive(Clone, Copy, Debug)]
struct Copy {
    at: Instant,
    epoch: i64,
}

/// Every event id the relay published, with its type and each copy, as a core subscriber
/// sees them.
type RawCounts = Arc<Mutex<HashMap<String, (String, Vec<Copy>)>>>;

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
            let event_type = event["type"].as_str().unwrap_or("?").to_owned();
            let epoch = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(eventstore::relay::EPOCH_HEADER))
                .and_then(|value| value.as_str().parse().ok())
                .expect("every message names its relay epoch");
            let copy = Copy {
                at: Instant::now(),
                epoch,
            };
            sink.lock()
                .unwrap()
                .entry(id)
                .or_insert_with(|| (event_type, Vec::new()))
                .1
                .push(copy);
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

/// How many messages the events stream holds.
async fn stored_in_jetstream(nats_url: &str) -> u64 {
    let client = async_nats::connect(nats_url).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(eventstore::relay::STREAM_NAME)
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
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

/// Waits until every stored event was published at least once; returns how long that took,
/// or says how many are missing.
async fn wait_all_published(
    pool: &sqlx::PgPool,
    counts: &RawCounts,
    within: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let stored = stored_ids(pool).await;
        let missing = {
            let counts = counts.lock().unwrap();
            stored.iter().filter(|id| !counts.contains_key(*id)).count()
        };
        if missing == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= within {
            return Err(format!(
                "{missing} of {} events not on NATS after {within:?}",
                stored.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times a node has started publishing as the relay's leader.
fn publishing_lines(node: &Node) -> usize {
    let log = node.log.lock().unwrap();
    log.iter()
        .filter(|line| line.contains("relay publishing"))
        .count()
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
    wait_all_published(&pool, &counts, Duration::from_secs(30))
        .await
        .unwrap();
    let (leader, standby) = if first.log_contains("relay publishing") {
        (first, second)
    } else {
        (second, first)
    };
    assert!(leader.log_contains("relay publishing"), "one node leads");

    let standby_was_publishing = publishing_lines(&standby);
    let frozen_at = Instant::now();
    signal(&leader, "STOP");
    let writes: Vec<_> = (1..4)
        .map(|n| {
            let (client, url) = (client.clone(), standby.url(""));
            tokio::spawn(async move { register(&client, &url, n).await })
        })
        .collect();
    while publishing_lines(&standby) == standby_was_publishing {
        assert!(
            frozen_at.elapsed() < TAKEOVER_BOUND,
            "the standby did not take the relay over within {TAKEOVER_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_over = frozen_at.elapsed();
    for write in writes {
        write.await.unwrap().expect("the standby serves writes");
    }
    wait_all_published(&pool, &counts, DELIVERY_BOUND.saturating_sub(frozen_at.elapsed()))
        .await
        .unwrap();
    eprintln!(
        "with the leader frozen, the standby took over after {took_over:?}; the events written \
         meanwhile were on NATS {:?} after the freeze",
        frozen_at.elapsed()
    );

    let leader_epoch = counts
        .lock()
        .unwrap()
        .values()
        .flat_map(|(_, copies)| copies.iter())
        .filter(|copy| copy.at < frozen_at)
        .map(|copy| copy.epoch)
        .max()
        .expect("the leader published before the freeze");
    let woken_at = Instant::now();
    signal(&leader, "CONT");
    for n in 4..7 {
        register(&client, &leader.url(""), n)
            .await
            .expect("the woken node serves");
        register(&client, &standby.url(""), n + 10)
            .await
            .expect("the standby serves");
    }
    wait_all_published(&pool, &counts, Duration::from_secs(30))
        .await
        .unwrap();
    // Give a woken leader that wrongly relays the time to show it.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stored = stored_ids(&pool).await;
    let counts = counts.lock().unwrap().clone();
    let after_waking: Vec<_> = counts
        .values()
        .flat_map(|(event_type, copies)| copies.iter().map(move |copy| (event_type, copy)))
        .filter(|(_, copy)| copy.epoch <= leader_epoch && copy.at > woken_at)
        .collect();
    assert!(
        after_waking.is_empty(),
        "the woken leader (epoch {leader_epoch}) published again: {after_waking:?}"
    );
    // Each epoch sends an event at most once; a second copy comes only from a later epoch
    // re-sending what the frozen leader had published but not yet checkpointed.
    let repeated_within_an_epoch: Vec<_> = counts
        .iter()
        .filter(|(_, (_, copies))| {
            let epochs: HashSet<i64> = copies.iter().map(|copy| copy.epoch).collect();
            epochs.len() != copies.len()
        })
        .collect();
    assert!(
        repeated_within_an_epoch.is_empty(),
        "one epoch published an event twice: {repeated_within_an_epoch:?}"
    );
    let resent = counts.values().filter(|(_, copies)| copies.len() > 1).count();
    eprintln!("{resent} events were sent again by the new leader (past the last checkpoint)");
    assert_eq!(
        stored_in_jetstream(&nats.url()).await,
        stored.len() as u64,
        "JetStream stores each event once"
    );
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
