//! The conversation, run history and usage views over HTTP: what the lists and `GET /v1/usage`
//! answer, and `projections rebuild` switching each to a copy rebuilt from the log while the API
//! keeps answering and writes keep coming.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventstore::EventStore;
use projections::rebuild::rebuild;
use projections::{ConversationsProjector, Projector, RunHistoryProjector, UsageProjector};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::register;
use crate::helpers::{TestApp, assert_problem};
use crate::runs::{conversation, echo_agent, run_reaching, start_run};

/// Every conversation id the list shows, page by page.
async fn listed_conversations(app: &TestApp, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(cursor) => format!("/v1/conversations?limit=100&cursor={cursor}"),
            None => "/v1/conversations?limit=100".to_owned(),
        };
        let response = app.with_bearer(token).get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "list conversations");
        let page: Value = response.json().await.unwrap();
        ids.extend(
            page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|conversation| conversation["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.with_bearer(token).get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

fn store_of(app: &TestApp) -> EventStore {
    EventStore::new(app.pool.clone(), domain::upcasting::upcasters())
}

#[tokio::test]
async fn run_history_and_usage_answer_from_their_views_right_after_the_writes() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "views-owner").await;
    let token = &owner.access_token;
    let agent = echo_agent(&app, token, 5).await;
    let first = conversation(&app, token, &agent).await;
    let second = conversation(&app, token, &agent).await;
    let mut runs = Vec::new();
    for (conversation_id, input) in [(&first, "one two three"), (&second, "four five"), (&first, "six")] {
        let run = start_run(&app, token, conversation_id, input).await;
        run_reaching(&app, token, &run, "completed").await;
        runs.push(run);
    }

    // Newest first, every run of the organization, each with its steps and usage.
    let history = get_json(&app, token, "/v1/runs").await;
    let listed: Vec<&str> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![runs[2].as_str(), runs[1].as_str(), runs[0].as_str()]);
    let newest = &history["runs"][0];
    assert_eq!(newest["status"], "completed");
    assert_eq!(newest["output"], "six");
    assert_eq!(newest["steps"][0]["content"], "six");
    assert_eq!(
        newest,
        &get_json(&app, token, &format!("/v1/runs/{}", runs[2])).await,
        "the view agrees with the log"
    );

    // Filters.
    let of_first = get_json(&app, token, &format!("/v1/runs?conversation_id={first}")).await;
    assert_eq!(of_first["runs"].as_array().unwrap().len(), 2);
    let paged = get_json(&app, token, "/v1/runs?limit=2").await;
    assert_eq!(paged["runs"].as_array().unwrap().len(), 2);
    let cursor = paged["next_cursor"].as_i64().expect("a second page");
    let rest = get_json(&app, token, &format!("/v1/runs?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["runs"][0]["id"], runs[0].as_str());
    assert!(rest.get("next_cursor").is_none());
    let failed = get_json(&app, token, "/v1/runs?status=failed").await;
    assert_eq!(failed["runs"], json!([]));

    // The conversation's messages from its view, in order.
    let read = get_json(&app, token, &format!("/v1/conversations/{first}")).await;
    let contents: Vec<&str> = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["one two three", "one two three", "six", "six"]);

    // Usage: echo counts a token per word; three runs and three model calls today.
    let usage = get_json(&app, token, "/v1/usage").await;
    let today = &usage["periods"][0];
    assert_eq!(usage["periods"].as_array().unwrap().len(), 1, "{usage}");
    assert_eq!(today["runs"], 3);
    assert_eq!(today["llm_calls"], 3);
    assert_eq!(today["completion_tokens"], 6);
    let runs_credits: u64 = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["usage"]["credits"].as_u64().unwrap())
        .sum();
    assert_eq!(today["credits"], runs_credits);
    let monthly = get_json(&app, token, "/v1/usage?period=month").await;
    assert_eq!(monthly["periods"][0]["runs"], 3);

    // A range the route does not answer, and another organization seeing none of it.
    let bad = app
        .with_bearer(token)
        .get("/v1/usage?from=2026-12-05&to=2026-12-01")
        .await;
    assert_eq!(
        assert_problem(bad, StatusCode::BAD_REQUEST).await["code"],
        "invalid_usage_range"
    );
    let other = register(&app, "views-other").await;
    let theirs = get_json(&app, &other.access_token, "/v1/runs").await;
    assert_eq!(theirs["runs"], json!([]));
    let their_usage = get_json(&app, &other.access_token, "/v1/usage").await;
    assert_eq!(their_usage["periods"], json!([]));
    let filtered = get_json(
        &app,
        &other.access_token,
        &format!("/v1/runs?conversation_id={first}"),
    )
    .await;
    assert_eq!(filtered["runs"], json!([]));
    app.cleanup().await;
}

#[tokio::test]
async fn a_rebuild_switches_to_a_copy_from_the_log_while_reads_and_writes_go_on() {
    let app = Arc::new(TestApp::spawn().await);
    let owner = register(&app, "rebuild-owner").await;
    let token = owner.access_token.clone();
    let agent = echo_agent(&app, &token, 5).await;
    let mut created = BTreeSet::new();
    for _ in 0..30 {
        created.insert(conversation(&app, &token, &agent).await);
    }
    let with_run = created.iter().next().unwrap().clone();
    let run = start_run(&app, &token, &with_run, "rebuilt words").await;
    run_reaching(&app, &token, &run, "completed").await;
    let runs_before = get_json(&app, &token, "/v1/runs").await;
    let usage_before = get_json(&app, &token, "/v1/usage").await;

    // Damage the live views: only a rebuild from the log can mend them.
    sqlx::query("UPDATE conversation_views SET title = 'damaged'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE run_history SET output = 'damaged'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE usage_daily SET runs = 1000")
        .execute(&app.pool)
        .await
        .unwrap();

    // Writers and readers keep going while each view is rebuilt.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (app, token, agent, stop) = (Arc::clone(&app), token.clone(), agent.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut written = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                written.push(conversation(&app, &token, &agent).await);
            }
            written
        })
    };
    let reader = {
        let (app, token, stop) = (Arc::clone(&app), token.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = app.with_bearer(&token).get("/v1/conversations?limit=5").await;
                assert_eq!(
                    response.status(),
                    StatusCode::OK,
                    "the list answers during the rebuild"
                );
                reads += 1;
            }
            reads
        })
    };
    let store = store_of(&app);
    for projector in [
        Arc::new(ConversationsProjector) as Arc<dyn Projector>,
        Arc::new(RunHistoryProjector),
        Arc::new(UsageProjector),
    ] {
        let report = rebuild(&store, projector, |_| {}).await.expect("rebuild");
        assert!(report.events > 0);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    created.extend(writer.await.unwrap());
    assert!(reader.await.unwrap() > 0);

    // Every conversation written before, during and after the switch, once; none damaged.
    let listed = listed_conversations(&app, &token).await;
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "no conversation twice");
    assert_eq!(
        listed_set, created,
        "every write of the rebuild's time is in the new view"
    );
    let damaged: i64 = sqlx::query_scalar("SELECT count(*) FROM conversation_views WHERE title = 'damaged'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(damaged, 0);
    assert_eq!(get_json(&app, &token, "/v1/runs").await, runs_before);
    assert_eq!(get_json(&app, &token, "/v1/usage").await, usage_before);
    let read = get_json(&app, &token, &format!("/v1/conversations/{with_run}")).await;
    assert_eq!(read["messages"][1]["content"], "rebuilt words");
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild\\_%' OR nspname LIKE 'retired\\_%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(leftovers, 0, "the old tables are dropped");
    match Arc::try_unwrap(app) {
        Ok(app) => app.cleanup().await,
        Err(_) => panic!("the test's tasks still hold the app"),
    }
}

#[tokio::test]
async fn the_audit_log_is_not_rebuilt_beside_itself() {
    let app = TestApp::spawn().await;
    let outcome = rebuild(&store_of(&app), Arc::new(projections::AuditProjector), |_| {}).await;
    assert!(matches!(
        outcome,
        Err(projections::rebuild::RebuildError::NotRebuildable(_))
    ));
    app.cleanup().await;
}
