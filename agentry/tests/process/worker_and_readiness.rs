//! `agentry worker` does the background work alone, and `/readyz` names a failing NATS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use testkit::PrivateNats;

use crate::node::{BINARY, Node, database_url, drop_database, install_crypto_provider};

async fn readyz(node: &Node) -> (u16, String) {
    let response = reqwest::get(node.url("/readyz")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_names_nats_while_it_is_down_and_recovers_when_it_returns() {
    install_crypto_provider();
    let mut nats = PrivateNats::start();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve(&[("DATABASE_URL", database_url(&name)), ("NATS_URL", nats.url())]);
    assert_eq!(readyz(&node).await.0, 200);

    nats.kill();
    let mut answer = readyz(&node).await;
    for _ in 0..50 {
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = readyz(&node).await;
    }
    assert_eq!(answer.0, 503, "not ready while NATS is down: {}", answer.1);
    assert!(answer.1.contains("nats"), "the answer names NATS: {}", answer.1);
    assert!(
        !answer.1.contains("postgres failing"),
        "Postgres is fine: {}",
        answer.1
    );

    nats.restart();
    let mut status = readyz(&node).await.0;
    for _ in 0..100 {
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = readyz(&node).await.0;
    }
    assert_eq!(status, 200, "ready again once NATS is back");
    node.terminate();
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_alone_keeps_the_read_models_up_to_date() {
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let url = database_url(&name);
    let mut worker = Command::new(BINARY)
        .arg("worker")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pool = {
        let started = Instant::now();
        loop {
            match sqlx::PgPool::connect(&url).await {
                Ok(pool)
                    if sqlx::query("SELECT 1 FROM users LIMIT 1")
                        .execute(&pool)
                        .await
                        .is_ok() =>
                {
                    break pool;
                }
                _ => {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "the worker did not migrate the database"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    };

    // Another process writes events (the admin command); only the worker projects them.
    let status = Command::new(BINARY)
        .args([
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password",
            "correct horse battery staple",
        ])
        .env("DATABASE_URL", &url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_platform_admin")
            .fetch_one(&pool)
            .await
            .unwrap();
        if admins == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker did not project the new administrator"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(worker.id().to_string())
        .status();
    assert!(
        worker.wait().unwrap().success(),
        "the worker stops cleanly on SIGTERM"
    );
    pool.close().await;
    drop_database(&name).await;
}
