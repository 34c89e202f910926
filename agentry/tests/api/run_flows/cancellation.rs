//! Cancelling a run closes what it waits for; a client that stops watching cancels nothing.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::Reply;

use super::support::{Flow, only_call};

/// `count` words, one chunk each.
fn long_answer(count: usize) -> String {
    (0..count).map(|n| format!("word{n} ")).collect()
}

#[tokio::test]
async fn cancelling_while_the_model_streams_cancels_the_run_and_closes_the_providers_stream() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    flow.llm
        .push(Reply::words(&long_answer(100)).every(Duration::from_millis(200)));

    let (_, run_id) = flow.run(&agent, "Talk slowly").await;
    // Wait until some text was recorded: the model is mid-answer.
    let began = Instant::now();
    loop {
        let run = flow.get_run(&run_id).await;
        if run["steps"][0]["content"].as_str().is_some_and(|c| !c.is_empty()) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "no text streamed: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(flow.llm.open_streams(), 1);

    let cancelled_at = Instant::now();
    flow.cancel(&run_id).await;
    let run = flow.run_reaching(&run_id, "cancelled").await;
    assert!(
        flow.llm.wait_closed_early(1, Duration::from_secs(2)).await,
        "the provider's stream was still open {:?} after the cancel",
        cancelled_at.elapsed()
    );
    assert_eq!(flow.llm.completed(), 0);
    assert_eq!(flow.llm.request_count(), 1, "nothing asked after the cancel");
    assert!(run.get("output").is_none(), "{run:#}");

    let types = flow.event_types(&run_id).await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("run.cancelled"),
        "{types:?}"
    );
    assert!(!types.iter().any(|t| t == "llm_call.completed"), "{types:?}");
    // Nothing is recorded after the cancel, even once the executor noticed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(flow.event_types(&run_id).await, types);
    flow.cleanup().await;
}

#[tokio::test]
async fn cancelling_while_a_tool_call_is_in_flight_cancels_the_run_and_records_no_outcome_after() {
    let flow = Flow::start().await;
    // It answers at once and writes its body slowly, so it sees the connection close.
    flow.tool("sluggish", "/trickle/3000", Some(10_000)).await;
    let agent = flow.agent(&["sluggish"], json!("never")).await;
    flow.llm
        .push(Reply::tool_call("call_1", "sluggish", [r#"{"city": "Oslo"}"#]))
        .push(Reply::words("never asked"));

    let (_, run_id) = flow.run(&agent, "Be slow").await;
    assert!(
        flow.tools.wait_requests(1, Duration::from_secs(20)).await,
        "the tool was never called"
    );
    let running = flow.get_run(&run_id).await;
    assert_eq!(only_call(&running, 0)["status"], "running", "{running:#}");

    let cancelled_at = Instant::now();
    flow.cancel(&run_id).await;
    flow.run_reaching(&run_id, "cancelled").await;
    while flow.tools.abandoned() < 1 {
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(2),
            "the tool's connection was still open 2 s after the cancel (answered: {})",
            flow.tools.answered()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the moment the tool would have answered.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let run = flow.get_run(&run_id).await;
    assert_eq!(run["status"], "cancelled", "{run:#}");
    let call = only_call(&run, 0);
    assert_ne!(call["status"], "completed", "{run:#}");
    assert!(call.get("output").is_none(), "{run:#}");

    let types = flow.event_types(&run_id).await;
    let cancelled = types.iter().position(|t| t == "run.cancelled").unwrap();
    assert_eq!(cancelled, types.len() - 1, "recorded after the cancel: {types:?}");
    assert!(!types.iter().any(|t| t == "tool_call.completed"), "{types:?}");
    assert_eq!(flow.tools.request_count(), 1);
    assert_eq!(flow.tools.answered(), 0, "the tool's answer was still awaited");
    assert_eq!(flow.llm.request_count(), 1, "the model was not asked again");
    flow.cleanup().await;
}

#[tokio::test]
async fn a_run_nobody_watches_completes() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    let answer = long_answer(20);
    flow.llm
        .push(Reply::words(&answer).every(Duration::from_millis(50)));
    let conversation_id = crate::runs::conversation(&flow.app, &flow.token, &agent).await;

    // A client of its own starts the run and goes away at once: its connections close.
    let client = reqwest::Client::new();
    let queued = client
        .post(flow.app.url(&format!("/v1/conversations/{conversation_id}/runs")))
        .bearer_auth(&flow.token)
        .json(&json!({ "input": "Nobody listens" }))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), reqwest::StatusCode::ACCEPTED);
    let run_id = queued.json::<serde_json::Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(client);

    // Nobody reads the run while it streams; the provider alone says when it finished.
    let began = Instant::now();
    while flow.llm.completed() < 1 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the answer never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = flow.run_reaching(&run_id, "completed").await;
    assert_eq!(run["output"], answer.as_str(), "{run:#}");
    assert_eq!(flow.llm.closed_early(), 0);
    flow.cleanup().await;
}
