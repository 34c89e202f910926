//! The audit export streams in constant memory: 100,000 entries (about 70 MB of NDJSON) leave
//! the serving process's resident memory where it was, give or take a page of entries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;

use crate::node::{Node, database_url, drop_database, install_crypto_provider, register};

/// Entries exported.
const ENTRIES: i64 = 100_000;
/// Most the process may grow while exporting them: far below the export's size, above what a
/// page of entries and the allocator's slack take.
const MAX_GROWTH_BYTES: u64 = 40 * 1024 * 1024;

/// The process's resident set size, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Waits until the audit sealer has sealed every event, so the entries added by SQL come after
/// everything it will seal.
async fn sealed(pool: &sqlx::PgPool) {
    for _ in 0..500 {
        let behind: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM events e
                  WHERE (e.transaction_id, e.position) > coalesce(
                        (SELECT (c.transaction_id, c.position) FROM follower_checkpoints c WHERE c.name = 'audit'),
                        ('0'::xid8, 0)))",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if !behind {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the audit sealer did not catch up");
}

/// Appends `ENTRIES` entries after the organization's current head, by SQL (their hashes are
/// not a chain: this test is about memory, not verification).
async fn fill_log(pool: &sqlx::PgPool, org_id: Uuid) {
    sqlx::query(
        "INSERT INTO audit_entries (org_id, seq, event_id, position, recorded_at, actor, action, target_type,
                                    target_id, request_id, client_ip, user_agent, prev_hash, hash)
         SELECT $1, head.seq + n, gen_random_uuid(), -n, now(), 'user:' || gen_random_uuid(), 'run.queued', 'run',
                gen_random_uuid()::text, gen_random_uuid()::text, '203.0.113.9', repeat('Mozilla/5.0 ', 20),
                sha256(int8send(n)), sha256(int8send(n + 1))
           FROM generate_series(1, $2::bigint) n,
                (SELECT coalesce(max(seq), 0) AS seq FROM audit_entries WHERE org_id = $1) head",
    )
    .bind(org_id)
    .bind(ENTRIES)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn exporting_100_000_entries_keeps_the_process_memory_flat() {
    install_crypto_provider();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let url = database_url(&name);
    let node = Node::serve(&[("DATABASE_URL", url.clone())]);
    let client = reqwest::Client::new();
    let account = register(&client, &node.url(""), 0).await.expect("an account");
    let token = account["access_token"].as_str().unwrap().to_owned();
    let org_id: Uuid = account["org_id"].as_str().unwrap().parse().unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sealed(&pool).await;
    fill_log(&pool, org_id).await;

    // A warm-up export of a few entries, so the baseline holds what any request allocates.
    let warm = client
        .get(node.url("/v1/audit/export?after_seq=99990"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    warm.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = node.pid();
    let baseline = rss_bytes(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                peak.fetch_max(rss_bytes(pid), Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let response = client
        .get(node.url("/v1/audit/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut bytes, mut lines) = (0u64, 0i64);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|byte| **byte == b'\n').count() as i64;
    }
    done.store(true, Ordering::Release);
    sampler.await.unwrap();

    let growth = peak.load(Ordering::Acquire).saturating_sub(baseline);
    eprintln!(
        "exported {lines} entries, {} MiB; RSS baseline {} MiB, peak growth {:.1} MiB",
        bytes >> 20,
        baseline >> 20,
        growth as f64 / 1048576.0
    );
    pool.close().await;
    drop(node);
    drop_database(&name).await;
    assert!(lines > ENTRIES, "every entry exported: {lines}");
    assert!(
        bytes > 3 * MAX_GROWTH_BYTES / 2,
        "the export ({bytes} bytes) dwarfs the bound"
    );
    assert!(
        growth < MAX_GROWTH_BYTES,
        "the process grew by {growth} bytes while exporting {bytes} bytes"
    );
}
