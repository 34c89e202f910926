//! A run whose dispatch never reached NATS is executed anyway, without restarting anything.
//!
//! With `NATS_URL` set, `POST /v1/conversations/{id}/runs` records `run.queued` and publishes a
//! work item; if NATS is down at that moment the publish fails. Every worker sweeps the log
//! for runs still waiting and publishes their dispatch again, so the run is executed soon after
//! NATS is back, by the same processes. Two nodes sweep here: their copies of the dispatch
//! carry one message id, JetStream keeps one, and the run is executed once. The same holds for
//! the dispatch that follows a decision on the last call awaiting approval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use runtime::executor::{DISPATCH_GRACE, SWEEP_EVERY};
use testkit::{FakeLlm, PrivateNats, Reply};
use uuid::Uuid;

use crate::node::{Node, database_url, drop_database, install_crypto_provider};
use crate::run_crashes::{
    FINAL_ANSWER, FINISH_BOUND, has, new_conversation, node_env, of_type, run_events, summary, wait_events,
};

/// How long after NATS is back a run whose dispatch was lost is taken: the node's reconnect
/// (its backoff is at most 4 s), a sweep ([`SWEEP_EVERY`]) and the run's grace
/// ([`DISPATCH_GRACE`], long past here), plus a loaded machine.
const REDISPATCH_BOUND: Duration = Duration::from_secs(15);

/// What the node logs when the API's publish of a dispatch failed (the sweep's own failures
/// say otherwise).
const API_PUBLISH_FAILED: &str = "run not dispatched; the sweep will dispatch it again";

/// How long the node may take to give up publishing while NATS is down (the publish's 5 s
/// timeout, plus a loaded machine).
const PUBLISH_GIVES_UP: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_dispatch_was_lost_while_nats_was_down_is_executed_once_nats_is_back() {
    install_crypto_provider();
    assert!(SWEEP_EVERY + DISPATCH_GRACE < REDISPATCH_BOUND);
    let mut nats = PrivateNats::start();
    let llm = FakeLlm::start().await;
    llm.push(Reply::words(FINAL_ANSWER));
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let env = node_env(&name, &llm, Some(&nats));
    let node = Node::serve_off_runtime(&env).await;
    let other = Node::serve_off_runtime(&env).await;
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    let conversation = new_conversation(&node, None, "never").await;

    nats.kill();
    let run_id = conversation.start_run().await;
    let posted = Instant::now();
    while !node.log_contains(API_PUBLISH_FAILED) {
        assert!(
            posted.elapsed() < PUBLISH_GIVES_UP,
            "the node did not report the failed publish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = run_events(&pool, run_id).await;
    assert_eq!(
        summary(&events),
        ["run.queued"],
        "nothing took the run while NATS was down"
    );

    let back = Instant::now();
    nats.restart();
    let events = wait_events(
        &pool,
        run_id,
        REDISPATCH_BOUND,
        "the run's start after NATS came back",
        has("run.started"),
    )
    .await;
    eprintln!(
        "the run was started {:?} after NATS came back ({:?} after it was posted)",
        back.elapsed(),
        posted.elapsed()
    );
    let published = [&node, &other]
        .iter()
        .map(|node| node.log_count("dispatched again a run whose dispatch was lost"))
        .sum::<usize>();
    assert_eq!(
        published, 1,
        "one sweep's copy was stored, the other's dropped as a duplicate"
    );
    assert!(
        of_type(&events, "run.resumed").is_empty(),
        "{:?}",
        summary(&events)
    );

    let events = wait_events(
        &pool,
        run_id,
        FINISH_BOUND,
        "the run's completion",
        has("run.completed"),
    )
    .await;
    assert_eq!(of_type(&events, "run.started").len(), 1, "{:?}", summary(&events));
    assert_eq!(
        of_type(&events, "message.completed").last().unwrap()["content"],
        FINAL_ANSWER
    );
    assert_eq!(llm.request_count(), 1, "the model was asked once");
    pool.close().await;
    node.terminate();
    other.terminate();
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_dispatch_after_a_denial_was_lost_goes_on_once_nats_is_back() {
    install_crypto_provider();
    let mut nats = PrivateNats::start();
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool_call("call_1", "weather", [r#"{"city":"Oslo"}"#]))
        .push(Reply::words(FINAL_ANSWER));
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve_off_runtime(&node_env(&name, &llm, Some(&nats))).await;
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    let tool = Some(("weather", "http://127.0.0.1:9/weather"));
    let conversation = new_conversation(&node, tool, "always").await;
    let run_id = conversation.start_run().await;
    let events = wait_events(
        &pool,
        run_id,
        FINISH_BOUND,
        "the call awaiting approval",
        has("tool_call.requested"),
    )
    .await;
    let call_id = of_type(&events, "tool_call.requested")[0]["call"]["call_id"]
        .as_str()
        .unwrap()
        .to_owned();

    nats.kill();
    conversation.deny(&node, run_id, &call_id).await;
    let denied = Instant::now();
    while !node.log_contains(API_PUBLISH_FAILED) {
        assert!(
            denied.elapsed() < PUBLISH_GIVES_UP,
            "the node did not report the failed publish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = Instant::now();
    nats.restart();
    wait_events(
        &pool,
        run_id,
        REDISPATCH_BOUND,
        "the run's second model call after NATS came back",
        |events| of_type(events, "llm_call.started").len() == 2,
    )
    .await;
    eprintln!("the run went on {:?} after NATS came back", back.elapsed());
    let events = wait_events(
        &pool,
        run_id,
        FINISH_BOUND,
        "the run's completion",
        has("run.completed"),
    )
    .await;
    assert!(
        node.log_contains("dispatched again a run whose dispatch was lost"),
        "the sweep published the dispatch"
    );
    assert_eq!(
        of_type(&events, "tool_call.denied").len(),
        1,
        "{:?}",
        summary(&events)
    );
    assert_eq!(llm.request_count(), 2, "the model was asked twice");
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}
