//! A node killed while writing loses nothing and publishes nothing twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use testkit::{id_counts, stream_events};
use uuid::Uuid;

use crate::node::{Node, database_url, drop_database, install_crypto_provider, register};

fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_write_loses_no_event_and_publishes_none_twice() {
    install_crypto_provider();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let env = [("DATABASE_URL", database_url(&name)), ("NATS_URL", nats_url())];
    let node = Node::serve(&env);
    let url = node.url("");
    let registered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&registered);
    let writer = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut accounts = Vec::new();
        for n in 0..80 {
            if let Some(account) = register(&client, &url, n).await {
                accounts.push(account);
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
        accounts
    });
    // Kill it while it writes: once the node serves (its start takes a while on a loaded
    // machine, and a fixed delay killed it before it served at all), a few registrations in.
    let started = std::time::Instant::now();
    while registered.load(Ordering::SeqCst) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node never served"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    let mut accounts = writer.await.unwrap();
    assert!(
        !accounts.is_empty() && accounts.len() < 80,
        "the kill landed mid-write ({} registered)",
        accounts.len()
    );

    let node = Node::serve(&env);
    let client = reqwest::Client::new();
    for n in 100..105 {
        accounts.push(
            register(&client, &node.url(""), n)
                .await
                .expect("the restarted node serves"),
        );
    }

    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT org_id FROM events WHERE org_id IS NOT NULL")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        orgs.len() >= accounts.len(),
        "every registered organization has events"
    );
    let jetstream = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    for org in orgs {
        let stored: HashSet<Uuid> = sqlx::query_scalar("SELECT event_id FROM events WHERE org_id = $1")
            .bind(org)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let events = stream_events(&jetstream, org, stored.len(), Duration::from_secs(30)).await;
        let published = id_counts(&events);
        let duplicated: Vec<_> = published.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicated.is_empty(),
            "org {org}: published twice: {duplicated:?}"
        );
        let published: HashSet<Uuid> = published.keys().map(|id| id.parse().unwrap()).collect();
        assert_eq!(
            published, stored,
            "org {org}: the stream holds exactly the stored events"
        );
    }
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}
