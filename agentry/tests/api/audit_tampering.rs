//! Tampering with the audit log through SQL, as someone with direct database access would, and
//! the three verifiers naming the first broken link: `GET /v1/audit/verify`,
//! `agentry audit verify` and the independent `scripts/verify-audit.py` on the export.

use std::process::Stdio;

use projections::audit::AuditEntry;
use projections::audit::queries::entries_after;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::accounts::{Account, create_api_key, expect_json, register};
use crate::audit::audit_caught_up;
use crate::helpers::TestApp;

/// Where each verifier says the chain breaks: `(seq, reason)`, `None` for an intact chain.
type Verdict = Option<(i64, String)>;

/// An organization whose log holds at least eight entries.
async fn organization_with_a_log(app: &TestApp, name: &str) -> Account {
    let owner = register(app, name).await;
    for key in ["a", "b", "c"] {
        create_api_key(app, &owner.access_token, key).await;
    }
    owner
}

async fn sql(app: &TestApp, statement: &str, org_id: Uuid) {
    sqlx::query(statement)
        .bind(org_id)
        .execute(&app.pool)
        .await
        .unwrap();
}

/// Changes one byte of entry 3's content (a character of its actor).
async fn alter_one_byte(app: &TestApp, org_id: Uuid) {
    sql(
        app,
        "UPDATE audit_entries SET actor = overlay(actor placing (CASE WHEN substr(actor, 6, 1) = 'a' THEN 'b' ELSE 'a' END) from 6 for 1)
          WHERE org_id = $1 AND seq = 3",
        org_id,
    )
    .await;
}

/// Deletes entry 3.
async fn delete_entry(app: &TestApp, org_id: Uuid) {
    sql(
        app,
        "DELETE FROM audit_entries WHERE org_id = $1 AND seq = 3",
        org_id,
    )
    .await;
}

/// Swaps entries 2 and 4 (their places in the log).
async fn swap_entries(app: &TestApp, org_id: Uuid) {
    for statement in [
        "UPDATE audit_entries SET seq = 1000002 WHERE org_id = $1 AND seq = 2",
        "UPDATE audit_entries SET seq = 2 WHERE org_id = $1 AND seq = 4",
        "UPDATE audit_entries SET seq = 4 WHERE org_id = $1 AND seq = 1000002",
    ] {
        sql(app, statement, org_id).await;
    }
}

/// Inserts a forged entry as entry 3, with a hash computed by the specification and linked to
/// entry 2, moving every later entry one place up: what a forger who read the docs would do.
async fn insert_forged_entry(app: &TestApp, org_id: Uuid) {
    let log: Vec<AuditEntry> = entries_after(&app.pool, org_id, 0, 10).await.unwrap();
    let mut content = log[1].content.clone();
    content.event_id = Uuid::now_v7();
    content.actor = format!("user:{}", Uuid::now_v7());
    content.action = "organization.member_added".into();
    let forged = content.seal(org_id, 3, log[1].hash.clone());
    assert_eq!(
        forged.hash,
        forged.computed_hash().to_vec(),
        "the forgery verifies on its own"
    );
    for statement in [
        "UPDATE audit_entries SET seq = seq + 1000000 WHERE org_id = $1 AND seq >= 3",
        "UPDATE audit_entries SET seq = seq - 999999 WHERE org_id = $1 AND seq > 1000000",
    ] {
        sql(app, statement, org_id).await;
    }
    let content = &forged.content;
    sqlx::query(
        "INSERT INTO audit_entries (org_id, seq, event_id, position, recorded_at, actor, impersonator_id, action,
                                    target_type, target_id, request_id, client_ip, user_agent, prev_hash, hash)
         VALUES ($1, 3, $2, -1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(org_id)
    .bind(content.event_id)
    .bind(content.recorded_at)
    .bind(&content.actor)
    .bind(&content.impersonator_id)
    .bind(&content.action)
    .bind(&content.target_type)
    .bind(&content.target_id)
    .bind(&content.request_id)
    .bind(&content.client_ip)
    .bind(&content.user_agent)
    .bind(&forged.prev_hash)
    .bind(&forged.hash)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// `GET /v1/audit/verify` as the organization's owner.
async fn route_verdict(app: &TestApp, owner: &Account) -> Verdict {
    let response = app.with_bearer(&owner.access_token).get("/v1/audit/verify").await;
    let report = expect_json(response, StatusCode::OK, "verify").await;
    assert_eq!(report["ok"], report.get("first_broken").is_none(), "{report}");
    report.get("first_broken").map(|broken| {
        (
            broken["seq"].as_i64().unwrap(),
            broken["reason"].as_str().unwrap().to_owned(),
        )
    })
}

/// `agentry audit verify [--org]` on the app's database: its exit status and output.
async fn command(app: &TestApp, org: Option<Uuid>) -> (Option<i32>, String) {
    let mut arguments = vec!["audit".to_owned(), "verify".to_owned()];
    if let Some(org) = org {
        arguments.extend(["--org".to_owned(), org.to_string()]);
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(&arguments)
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .env_remove("NATS_URL")
        .kill_on_drop(true)
        .output()
        .await
        .expect("running `agentry audit verify`");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), stdout)
}

/// The command's verdict on one organization, checking its exit status agrees.
async fn command_verdict(app: &TestApp, org_id: Uuid) -> Verdict {
    let (status, stdout) = command(app, Some(org_id)).await;
    let verdict = parse_command_line(&stdout, org_id);
    assert_eq!(status, Some(if verdict.is_some() { 1 } else { 0 }), "{stdout}");
    verdict
}

/// `organization <id>: first broken link at entry <seq> (<reason>): …` in the output.
fn parse_command_line(stdout: &str, org_id: Uuid) -> Verdict {
    let prefix = format!("organization {org_id}: first broken link at entry ");
    let line = stdout.lines().find_map(|line| line.strip_prefix(&prefix))?;
    let (seq, rest) = line.split_once(" (").unwrap();
    let reason = rest.split_once(')').unwrap().0;
    Some((seq.parse().unwrap(), reason.to_owned()))
}

/// `scripts/verify-audit.py` on the owner's export.
pub async fn python_verdict(app: &TestApp, owner: &Account) -> Verdict {
    let response = app.with_bearer(&owner.access_token).get("/v1/audit/export").await;
    assert_eq!(response.status(), StatusCode::OK);
    let export = response.bytes().await.unwrap();
    let (status, stdout) = run_python_verifier(&export, &[]).await;
    if stdout.starts_with("OK ") {
        assert_eq!(status, Some(0), "{stdout}");
        return None;
    }
    assert_eq!(status, Some(1), "{stdout}");
    let rest = stdout
        .strip_prefix("BROKEN seq=")
        .unwrap_or_else(|| panic!("{stdout}"));
    let (seq, rest) = rest.split_once(" reason=").unwrap();
    let reason = rest.split_once(':').unwrap().0;
    Some((seq.parse().unwrap(), reason.to_owned()))
}

/// Runs the Python verifier on `export` with extra arguments: its exit status and stdout.
pub async fn run_python_verifier(export: &[u8], arguments: &[String]) -> (Option<i32>, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-audit.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg("-")
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(export).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn every_verifier_names_the_first_broken_link_of_each_kind_of_tampering() {
    let app = TestApp::spawn().await;
    let intact = organization_with_a_log(&app, "intact").await;
    let altered = organization_with_a_log(&app, "altered").await;
    let deleted = organization_with_a_log(&app, "deleted").await;
    let swapped = organization_with_a_log(&app, "swapped").await;
    let forged = organization_with_a_log(&app, "forged").await;
    audit_caught_up(&app).await;
    for owner in [&intact, &altered, &deleted, &swapped, &forged] {
        assert_eq!(route_verdict(&app, owner).await, None, "intact before tampering");
    }

    alter_one_byte(&app, altered.org_id).await;
    delete_entry(&app, deleted.org_id).await;
    swap_entries(&app, swapped.org_id).await;
    insert_forged_entry(&app, forged.org_id).await;

    let expected: [(&Account, Verdict); 5] = [
        (&intact, None),
        (&altered, Some((3, "hash_mismatch".to_owned()))),
        (&deleted, Some((3, "missing".to_owned()))),
        (&swapped, Some((2, "prev_hash_mismatch".to_owned()))),
        (&forged, Some((3, "inserted".to_owned()))),
    ];
    for (owner, verdict) in &expected {
        assert_eq!(
            &route_verdict(&app, owner).await,
            verdict,
            "route, {}",
            owner.email
        );
        assert_eq!(
            &command_verdict(&app, owner.org_id).await,
            verdict,
            "command, {}",
            owner.email
        );
        assert_eq!(
            &python_verdict(&app, owner).await,
            verdict,
            "python, {}",
            owner.email
        );
    }
    // Every organization at once: exit 1, each broken chain named, the intact one not.
    let (status, stdout) = command(&app, None).await;
    assert_eq!(status, Some(1), "{stdout}");
    for (owner, verdict) in &expected {
        assert_eq!(&parse_command_line(&stdout, owner.org_id), verdict, "{stdout}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_command_and_the_python_verifier_accept_an_intact_log() {
    let app = TestApp::spawn().await;
    let owner = organization_with_a_log(&app, "owner").await;
    audit_caught_up(&app).await;

    let (status, stdout) = command(&app, None).await;
    assert_eq!(status, Some(0), "{stdout}");
    assert!(
        stdout.contains("1 of 1 organization audit chain(s) intact"),
        "{stdout}"
    );

    let report = expect_json(
        app.with_bearer(&owner.access_token).get("/v1/audit/verify").await,
        StatusCode::OK,
        "verify",
    )
    .await;
    let head = format!(
        "{}:{}",
        report["head"]["seq"],
        report["head"]["hash"].as_str().unwrap()
    );
    let export = app
        .with_bearer(&owner.access_token)
        .get("/v1/audit/export")
        .await
        .bytes()
        .await
        .unwrap();
    let (status, stdout) = run_python_verifier(&export, &["--checkpoint".to_owned(), head.clone()]).await;
    assert_eq!(
        (status, stdout.trim()),
        (
            Some(0),
            format!("OK entries={} head={head}", report["checked"]).as_str()
        )
    );
    // A checkpoint the export does not hold (a rewritten tail) is a broken chain.
    let wrong = format!("{}:{}", report["head"]["seq"], "0".repeat(64));
    let (status, stdout) = run_python_verifier(&export, &["--checkpoint".to_owned(), wrong]).await;
    assert_eq!(status, Some(1), "{stdout}");
    assert!(stdout.contains("reason=checkpoint_mismatch"), "{stdout}");
    app.cleanup().await;
}
