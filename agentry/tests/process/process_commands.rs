//! `agentry --help` and `agentry migrate`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use sqlx::Connection;
use uuid::Uuid;

use crate::node::{BINARY, database_url, drop_database};

#[test]
fn help_lists_the_commands_and_the_contract_variables() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();

    assert!(output.status.success());
    for expected in [
        "serve",
        "worker",
        "migrate",
        "admin",
        "DATABASE_URL",
        "NATS_URL",
        "AGENTRY_LISTEN",
        "AGENTRY_JWT_SECRET",
        "RUST_LOG",
    ] {
        assert!(
            help.contains(expected),
            "--help does not mention {expected}:\n{help}"
        );
    }
}

#[tokio::test]
async fn migrate_creates_a_missing_database_and_applies_every_migration() {
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());

    let status = Command::new(BINARY)
        .arg("migrate")
        .env("DATABASE_URL", database_url(&name))
        .status()
        .unwrap();

    assert!(status.success());
    let mut connection: sqlx::PgConnection = sqlx::PgConnection::connect(&database_url(&name)).await.unwrap();
    let (applied,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files);
    connection.close().await.unwrap();
    drop_database(&name).await;
}

#[test]
fn an_unreachable_database_is_one_clear_line_without_the_password() {
    let output = Command::new(BINARY)
        .arg("migrate")
        .env(
            "DATABASE_URL",
            "postgres://agentry:hunter2-secret@127.0.0.1:1/agentry",
        )
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("127.0.0.1:1/agentry") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password never reaches the output: {stderr}"
    );
}
