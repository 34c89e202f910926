//! The provider's side: rate limits retried after `Retry-After`, refusals and stalls failing
//! the run with their codes.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::Reply;

use super::support::Flow;

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_wait_and_the_step_counts_one_retry() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    flow.llm
        .push(Reply::error(429).with_retry_after("1"))
        .push(Reply::words("Second time lucky.").with_usage(9, 3));

    let began = Instant::now();
    let (_, run_id) = flow.run(&agent, "Hello").await;
    let run = flow.run_reaching(&run_id, "completed").await;
    assert!(
        began.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not waited for ({:?})",
        began.elapsed()
    );
    assert_eq!(run["output"], "Second time lucky.", "{run:#}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "a retry is not a step: {run:#}");
    assert_eq!(steps[0]["retries"], 1, "{run:#}");
    assert_eq!(steps[0]["prompt_tokens"], 9, "{run:#}");
    assert_eq!(flow.llm.request_count(), 2);
    let completed = flow
        .events(&run_id)
        .await
        .into_iter()
        .find(|(kind, _)| kind == "llm_call.completed")
        .unwrap()
        .1;
    assert_eq!(completed["retries"], 1, "{completed}");
    flow.cleanup().await;
}

#[tokio::test]
async fn a_provider_400_fails_the_run_with_llm_provider_error_without_retrying() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    flow.llm.push(
        Reply::error(400)
            .with_body(r#"{"error": {"message": "context too long", "type": "invalid_request_error"}}"#),
    );

    let (conversation_id, run_id) = flow.run(&agent, "Hello").await;
    let run = flow.run_reaching(&run_id, "failed").await;
    assert_eq!(run["error"]["code"], "llm_provider_error", "{run:#}");
    let detail = run["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("400") && detail.contains("context too long"),
        "{detail}"
    );
    assert_eq!(run["steps"][0]["status"], "failed", "{run:#}");
    assert_eq!(flow.llm.request_count(), 1, "a 400 is final");
    assert!(run.get("output").is_none(), "{run:#}");
    let messages = flow.messages(&conversation_id).await;
    assert_eq!(messages.len(), 1, "only the input: {messages:#?}");
    assert_eq!(
        flow.event_types(&run_id).await.last().map(String::as_str),
        Some("run.failed")
    );
    // The conversation is free again.
    let again = crate::runs::start_run(&flow.app, &flow.token, &conversation_id, "again").await;
    flow.run_reaching(&again, "completed").await;
    flow.cleanup().await;
}

#[tokio::test]
async fn a_stream_that_stalls_past_the_idle_timeout_fails_the_run_with_llm_timeout_and_is_closed() {
    let flow = Flow::start_with(|settings| {
        settings.runs.llm_idle_timeout_seconds = 1;
        settings.runs.llm_timeout_seconds = 1;
    })
    .await;
    let agent = flow.agent(&[], json!("never")).await;
    flow.llm.push(Reply::text(["It is ", "going "]).then_stall());

    let began = Instant::now();
    let (_, run_id) = flow.run(&agent, "Hello").await;
    let run = flow.run_reaching(&run_id, "failed").await;
    assert!(
        began.elapsed() >= Duration::from_millis(950),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(run["error"]["code"], "llm_timeout", "{run:#}");
    assert_eq!(flow.llm.request_count(), 1, "text had streamed: no retry");
    assert!(
        flow.llm.wait_closed_early(1, Duration::from_secs(5)).await,
        "the stalled call was left open"
    );
    flow.cleanup().await;
}

/// Was a defect: a call that failed after its retries recorded `retries: 0`; the failure now
/// carries its retries (`LlmError::Retried`).
#[tokio::test]
async fn a_provider_failing_every_retry_fails_the_run_and_the_step_counts_the_retries_made() {
    let flow = Flow::start_with(|settings| settings.runs.llm_max_retries = 2).await;
    let agent = flow.agent(&[], json!("never")).await;
    for _ in 0..3 {
        flow.llm.push(Reply::error(503).with_retry_after("0"));
    }

    let (_, run_id) = flow.run(&agent, "Hello").await;
    let run = flow.run_reaching(&run_id, "failed").await;
    assert_eq!(run["error"]["code"], "llm_provider_error", "{run:#}");
    assert_eq!(flow.llm.request_count(), 3, "the call and its two retries");
    assert_eq!(run["steps"][0]["retries"], 2, "{run:#}");
    flow.cleanup().await;
}
