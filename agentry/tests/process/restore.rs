//! A store restored from a logical dump (`pg_dump`/`pg_restore`, the real binaries) into
//! another database, made consistent by `agentry store restored`, then served by a real node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Argon2, PasswordHasher};
use domain::user::{User, UserCommand};
use eventstore::{CommandBus, CommandContext, EventStore};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::PrivateNats;
use uuid::Uuid;

use crate::node::{BINARY, Node, database_url, drop_database, install_crypto_provider, register};

const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";
const OLD_PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new password, long enough";

fn postgres_tool(tool: &str, args: &[&str]) {
    let output = Command::new(format!("{POSTGRES_BIN}/{tool}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `agentry store restored` against `database`.
fn store_restored(database: &str) -> Output {
    Command::new(BINARY)
        .args(["store", "restored"])
        .env("DATABASE_URL", database_url(database))
        .env_remove("NATS_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

async fn login(client: &reqwest::Client, node: &Node, email: &str, password: &str) -> (u16, Value) {
    let response = client
        .post(node.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What `GET /v1/me` answers to `bearer`.
async fn me_status(client: &reqwest::Client, node: &Node, bearer: &str) -> u16 {
    client
        .get(node.url("/v1/me"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn create_key(client: &reqwest::Client, node: &Node, token: &str, name: &str) -> (String, String) {
    let response = client
        .post(node.url("/v1/api-keys"))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let key: Value = response.json().await.unwrap();
    (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

async fn revoke_key(client: &reqwest::Client, node: &Node, token: &str, key_id: &str) {
    let response = client
        .delete(node.url(&format!("/v1/api-keys/{key_id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// Changes the user's password through the user aggregate (the HTTP route to it goes through
/// a mailed reset link): a `user.password_changed` after the `user.registered`. Returns the
/// new digest.
async fn change_password(pool: &PgPool, user_id: &str) -> String {
    let digest = Argon2::default()
        .hash_password(NEW_PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
    CommandBus::<User>::new(store, ())
        .execute(
            user_id,
            UserCommand::ChangePassword {
                password_hash: digest.clone().into(),
            },
            &CommandContext::system(None),
        )
        .await
        .unwrap();
    digest
}

/// Every event id published to `nats`, duplicates included (a core subscription sees each
/// publish; the stream's duplicate window would hide repeats).
async fn record_publishes(nats: &PrivateNats) -> Arc<Mutex<Vec<String>>> {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut subscription = client.subscribe("agentry.>").await.unwrap();
    let published = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&published);
    tokio::spawn(async move {
        let _client = client;
        while let Some(message) = subscription.next().await {
            if let Ok(event) = serde_json::from_slice::<Value>(&message.payload)
                && let Some(id) = event["id"].as_str()
            {
                sink.lock().unwrap().push(id.to_owned());
            }
        }
    });
    published
}

/// `pg_dump -Fc` of `source` restored with `pg_restore` into a new database `target`; returns a
/// pool on the server's maintenance database.
async fn dump_and_restore(source: &str, target: &str) -> PgPool {
    let dump = std::env::temp_dir().join(format!("{source}.dump"));
    let dump = dump.to_str().unwrap();
    postgres_tool("pg_dump", &["-Fc", "-f", dump, "-d", &database_url(source)]);
    let admin = PgPool::connect(&database_url("postgres")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{target}\""))
        .execute(&admin)
        .await
        .unwrap();
    postgres_tool(
        "pg_restore",
        &["--no-owner", "--no-privileges", "-d", &database_url(target), dump],
    );
    std::fs::remove_file(dump).unwrap();
    admin
}

/// Gives the restored rows the transaction ids an *older cluster* would have left on them.
///
/// In one cluster a restore looks harmless: the restored ids are this cluster's own past, all
/// below its counter. A restore into a new cluster keeps ids from another counter. Here the
/// old cluster was a little ahead: its transactions, renumbered in their own order (so the old
/// log's order is kept), get ids just above this cluster's counter. That is both failure modes
/// of a real restore: the rows are hidden behind the follower's gate now, and this cluster's
/// own transactions overtake their ids soon, mixing old and new. The checkpoints, from the
/// same old cluster, get the same ids.
async fn as_if_from_an_older_cluster(pool: &PgPool) {
    let mut transaction = pool.begin().await.unwrap();
    sqlx::query(
        "CREATE TEMP TABLE old_ids ON COMMIT DROP AS
         SELECT transaction_id AS restored,
                (pg_current_xact_id()::text::bigint + 100 + dense_rank() OVER (ORDER BY transaction_id))::text::xid8 AS old
           FROM (SELECT DISTINCT transaction_id FROM events) ids",
    )
    .execute(&mut *transaction)
    .await
    .unwrap();
    for table in ["events", "follower_checkpoints"] {
        sqlx::query(&format!(
            "UPDATE {table} t SET transaction_id = o.old FROM old_ids o WHERE t.transaction_id = o.restored"
        ))
        .execute(&mut *transaction)
        .await
        .unwrap();
    }
    transaction.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_store_keeps_logins_and_revocations_and_relays_only_new_events() {
    install_crypto_provider();
    let client = reqwest::Client::new();
    let (source, target) = (
        format!("agentry_proc_{}", Uuid::new_v4().simple()),
        format!("agentry_proc_{}", Uuid::new_v4().simple()),
    );

    // The old store: an account whose password changed, a revoked key and a live one.
    let old_node = Node::serve(&[("DATABASE_URL", database_url(&source))]);
    let account = register(&client, &old_node.url(""), 1).await.unwrap();
    let email = account["email"].as_str().unwrap().to_owned();
    let token = account["access_token"].as_str().unwrap().to_owned();
    let (revoked_id, revoked_key) = create_key(&client, &old_node, &token, "revoked before the dump").await;
    let (kept_id, kept_key) = create_key(&client, &old_node, &token, "revoked after the restore").await;
    revoke_key(&client, &old_node, &token, &revoked_id).await;
    let source_pool = PgPool::connect(&database_url(&source)).await.unwrap();
    let digest = change_password(&source_pool, account["user_id"].as_str().unwrap()).await;
    // Wait for the node's view, not by logging in: failed logins while it catches up would
    // lock the account (five failures), and a busy machine can take that long.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&source_pool)
        .await
        .unwrap()
        != digest
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old node never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(login(&client, &old_node, &email, NEW_PASSWORD).await.0, 200);
    old_node.terminate();
    let chain_before = audit_chain(&source_pool).await;
    source_pool.close().await;

    let admin = dump_and_restore(&source, &target).await;
    let pool = PgPool::connect(&database_url(&target)).await.unwrap();
    as_if_from_an_older_cluster(&pool).await;
    let restored: HashSet<String> = sqlx::query_scalar("SELECT event_id::text FROM events")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();

    let first = store_restored(&target);
    let second = store_restored(&target);

    let stdout = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(first.status.success(), "{}{}", stdout(&first), stderr(&first));
    assert!(
        stdout(&first).contains(&format!("{} restored event(s) renumbered", restored.len())),
        "{}",
        stdout(&first)
    );
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("already consistent"),
        "{}",
        stdout(&second)
    );
    // The audit log is a record: the rebuild keeps every sealed entry as it was (outside
    // checkpoints stay valid), seals only what was missing after it, and the chains verify.
    let chain_after = audit_chain(&pool).await;
    assert!(!chain_before.is_empty());
    let kept: HashSet<_> = chain_after.into_iter().collect();
    assert!(
        chain_before.iter().all(|entry| kept.contains(entry)),
        "a sealed entry changed"
    );
    let verify = Command::new(BINARY)
        .args(["audit", "verify"])
        .env("DATABASE_URL", database_url(&target))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}{}", stdout(&verify), stderr(&verify));
    let hidden: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(hidden, 0, "no restored event is hidden behind the gate");

    // The new cluster's node, relaying to a bus of its own.
    let nats = PrivateNats::start();
    let published = record_publishes(&nats).await;
    let node = Node::serve(&[("DATABASE_URL", database_url(&target)), ("NATS_URL", nats.url())]);

    let refused = store_restored(&target);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert_eq!(stderr(&refused).trim().lines().count(), 1, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("refusing"), "{}", stderr(&refused));

    assert_eq!(login(&client, &node, &email, OLD_PASSWORD).await.0, 401);
    let (status, tokens) = login(&client, &node, &email, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        me_status(&client, &node, &revoked_key).await,
        401,
        "revoked before the dump"
    );
    assert_eq!(me_status(&client, &node, &kept_key).await, 200);
    revoke_key(&client, &node, &token, &kept_id).await;
    let (_, new_key) = create_key(&client, &node, &token, "after the restore").await;

    // Let this cluster's counter pass every id the old cluster left (had they been kept, the
    // restored events would now come out from behind the gate and be delivered again).
    for _ in 0..400 {
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&pool)
            .await
            .unwrap();
    }
    let new_events: HashSet<String> =
        sqlx::query_scalar("SELECT event_id::text FROM events WHERE NOT (event_id::text = ANY($1))")
            .bind(restored.iter().cloned().collect::<Vec<_>>())
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !new_events.iter().all(|id| published.lock().unwrap().contains(id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new events were not relayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Generous quiet time (loaded 2-core machine) for anything old to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in published.lock().unwrap().iter() {
        *counts.entry(id.clone()).or_default() += 1;
    }
    let old_again: Vec<_> = counts.keys().filter(|id| restored.contains(*id)).collect();
    assert!(
        old_again.is_empty(),
        "restored events published again: {old_again:?}"
    );
    assert!(counts.iter().all(|(_, n)| *n == 1), "published twice: {counts:?}");
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), new_events);
    assert_eq!(
        me_status(&client, &node, &kept_key).await,
        401,
        "revoked after the restore"
    );
    assert_eq!(me_status(&client, &node, &revoked_key).await, 401);
    assert_eq!(me_status(&client, &node, &new_key).await, 200);
    assert_eq!(login(&client, &node, &email, NEW_PASSWORD).await.0, 200);

    node.terminate();
    pool.close().await;
    admin.close().await;
    drop_database(&source).await;
    drop_database(&target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_appended_after_the_restore_make_the_command_refuse_and_change_nothing() {
    install_crypto_provider();
    let client = reqwest::Client::new();
    let (source, target) = (
        format!("agentry_proc_{}", Uuid::new_v4().simple()),
        format!("agentry_proc_{}", Uuid::new_v4().simple()),
    );
    let old_node = Node::serve(&[("DATABASE_URL", database_url(&source))]);
    let account = register(&client, &old_node.url(""), 1).await.unwrap();
    old_node.terminate();
    let admin = dump_and_restore(&source, &target).await;
    let pool = PgPool::connect(&database_url(&target)).await.unwrap();
    as_if_from_an_older_cluster(&pool).await;
    // Someone wrote to the restored store before making it consistent.
    change_password(&pool, account["user_id"].as_str().unwrap()).await;
    let before: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id::text, transaction_id::text FROM events ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap();

    let refused = store_restored(&target);

    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("appended by this cluster after the restore"),
        "{stderr}"
    );
    let after: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id::text, transaction_id::text FROM events ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(after, before, "nothing was renumbered");

    pool.close().await;
    admin.close().await;
    drop_database(&source).await;
    drop_database(&target).await;
}

/// Every audit entry's organization, place and hash, in order.
async fn audit_chain(pool: &PgPool) -> Vec<(Uuid, i64, Vec<u8>)> {
    sqlx::query_as("SELECT org_id, seq, hash FROM audit_entries ORDER BY org_id, seq")
        .fetch_all(pool)
        .await
        .unwrap()
}
