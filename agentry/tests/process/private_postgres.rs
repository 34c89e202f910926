//! With no database configured and none at the default address, `serve` runs its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::node::{Node, install_crypto_provider, register};

#[tokio::test(flavor = "multi_thread")]
async fn without_a_database_serve_runs_a_private_postgres_that_keeps_its_data() {
    install_crypto_provider();
    let data_dir = std::env::temp_dir().join(format!("agentry-private-{}", Uuid::new_v4().simple()));
    let env = [
        // Nothing answers on port 1, as on a machine without a PostgreSQL service.
        (
            "AGENTRY_DEFAULT_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/agentry".to_owned(),
        ),
        ("AGENTRY_DATA_DIR", data_dir.display().to_string()),
        // A port of its own, so a cluster left behind by an aborted run never collides.
        ("AGENTRY_PRIVATE_POSTGRES_PORT", testkit::free_port().to_string()),
    ];
    let _stop_cluster = StopClusterOnDrop(data_dir.join("postgres"));
    let node = Node::serve(&env);
    assert!(
        node.log_contains("private PostgreSQL"),
        "the log says a private cluster runs"
    );
    let client = reqwest::Client::new();
    let account = register(&client, &node.url(""), 1)
        .await
        .expect("registration on the private cluster");
    node.terminate();

    let node = Node::serve(&env);
    let login = client
        .post(node.url("/v1/auth/login"))
        .json(&json!({ "email": account["email"], "password": "correct horse battery staple" }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the account survived the restart");
    node.terminate();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Stops the private cluster even when the test fails halfway (the server outlives a killed
/// `agentry` on purpose, so nothing else would stop it).
struct StopClusterOnDrop(std::path::PathBuf);

impl Drop for StopClusterOnDrop {
    fn drop(&mut self) {
        if !self.0.join("postmaster.pid").exists() {
            return;
        }
        let Some(bin) = agentry::embedded_postgres::EmbeddedPostgres::find_binaries() else {
            return;
        };
        let pg_ctl = bin.join("pg_ctl").display().to_string();
        let data = self.0.display().to_string();
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &pg_ctl,
                "stop",
                "-D",
                &data,
                "-m",
                "immediate",
            ])
            .status();
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap_or(&self.0));
    }
}
