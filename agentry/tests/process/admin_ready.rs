//! `agentry admin create` says the administrator is ready only when they can log in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use uuid::Uuid;

use crate::node::{BINARY, database_url, drop_database};

fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A fresh install: no node runs yet, NATS is configured, and the operator's next step is to
/// log in as the administrator. Login reads the `users` read model, so the command must not
/// report success before that model holds the administrator.
#[tokio::test]
async fn admin_create_reports_ready_only_once_the_administrator_can_log_in() {
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let url = database_url(&name);

    let output = Command::new(BINARY)
        .args([
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password",
            "correct horse battery staple",
        ])
        .env("DATABASE_URL", &url)
        .env("NATS_URL", nats_url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("platform administrator"),
        "admin create failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // Read at once, no retry: this is the row login looks the administrator up by.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let admin: Option<bool> =
        sqlx::query_scalar("SELECT is_platform_admin FROM users WHERE email = 'root@example.com'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    pool.close().await;
    drop_database(&name).await;
    assert_eq!(
        admin,
        Some(true),
        "`admin create` reported the administrator ready, but login cannot find them yet"
    );
}
