//! The call's first-chunk timeout and the idle timeout between chunks.

use std::time::{Duration, Instant};

use runtime::llm::{ChatModel, LlmError};
use testkit::{FakeLlm, Reply};

use crate::helpers::{ask, model, read, request, settings, user};

#[tokio::test]
async fn headers_without_a_first_chunk_time_out_and_are_not_retried() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::stall());
    let mut settings = settings(&llm);
    settings.call_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let error = model(settings)
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(error, LlmError::Timeout { seconds: 1 });
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn no_headers_within_the_call_timeout_is_a_timeout() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["late"]).after(Duration::from_secs(3)));
    let mut settings = settings(&llm);
    settings.call_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let error = model(settings)
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(error, LlmError::Timeout { seconds: 1 });
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stall_between_chunks_times_out_after_the_idle_timeout() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["one ", "two "]).then_stall());
    let mut settings = settings(&llm);
    settings.call_timeout = Duration::from_secs(10);
    settings.idle_timeout = Duration::from_millis(1500);
    let stream = model(settings).stream(request(vec![user("hi")])).await.unwrap();
    let answer = read(stream).await;

    assert_eq!(answer.texts(), ["one ", "two "]);
    assert_eq!(answer.end, Err(LlmError::Timeout { seconds: 2 }));
    let stalled = answer.ended_at - answer.deltas[1].1;
    assert!(
        stalled >= Duration::from_millis(1500) && stalled < Duration::from_secs(4),
        "{stalled:?}"
    );
}

#[tokio::test]
async fn a_slow_steady_stream_outlasts_the_idle_timeout() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["a", "b", "c", "d", "e", "f"]).every(Duration::from_millis(100)));
    let mut settings = settings(&llm);
    settings.idle_timeout = Duration::from_millis(300);
    settings.call_timeout = Duration::from_millis(300);
    let answer = ask(&model(settings), request(vec![user("hi")])).await;

    assert_eq!(answer.outcome().content, "abcdef");
}
