//! `AGENTRY_CORS_ORIGINS` as an operator meets it at start: a mistyped origin stops the process
//! with one line saying how to write it, and `*` is called out in the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use uuid::Uuid;

use crate::node::{BINARY, Node, database_url, drop_database};

#[test]
fn an_origin_no_browser_sends_stops_the_start_with_one_line_saying_how_to_write_it() {
    let output = Command::new(BINARY)
        .arg("serve")
        // Unreachable: the setting is checked before anything is connected.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/agentry")
        .env("AGENTRY_LISTEN", "127.0.0.1:0")
        .env(
            "AGENTRY_CORS_ORIGINS",
            "http://localhost:3000,https://app.example.com/",
        )
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("AGENTRY_CORS_ORIGINS") && stderr.contains("\"https://app.example.com\""),
        "names the setting and the origin as browsers send it: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_star_is_logged_as_the_development_setting_it_is() {
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve(&[
        ("DATABASE_URL", database_url(&name)),
        ("AGENTRY_CORS_ORIGINS", "*".to_owned()),
    ]);

    let warning = node
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("AGENTRY_CORS_ORIGINS=*"))
        .cloned();
    node.terminate();
    drop_database(&name).await;
    let warning = warning.expect("a log line about AGENTRY_CORS_ORIGINS=*");
    assert!(warning.contains("\"WARN\""), "{warning}");
}
