//! Retries on 429, 5xx and connection errors, before the first event only.

use std::time::{Duration, Instant};

use runtime::llm::{ChatModel, LlmError};
use testkit::{FakeLlm, Reply};

use crate::helpers::{API_KEY, ask, model, read, request, settings, user};

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_counted() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::error(429))
        .push(Reply::error(503))
        .push(Reply::text(["at last"]));
    let answer = ask(&model(settings(&llm)), request(vec![user("hi")])).await;

    assert_eq!(answer.texts(), ["at last"]);
    assert_eq!(answer.outcome().retries, 2);
    assert_eq!(llm.request_count(), 3);
}

#[tokio::test]
async fn retry_after_in_seconds_is_waited_for() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::error(429).with_retry_after("1"))
        .push(Reply::text(["ok"]));
    let mut settings = settings(&llm);
    settings.retry_max_delay = Duration::from_secs(5);
    let started = Instant::now();
    let answer = ask(&model(settings), request(vec![user("hi")])).await;

    assert_eq!(answer.outcome().retries, 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(3), "retried after {waited:?}");
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_waited_for() {
    let llm = FakeLlm::start().await;
    // Two seconds ahead: the date has whole seconds, so the wait is between one and two.
    let date = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc2822();
    llm.push(Reply::error(503).with_retry_after(&date))
        .push(Reply::text(["ok"]));
    let mut settings = settings(&llm);
    settings.retry_max_delay = Duration::from_secs(5);
    let started = Instant::now();
    ask(&model(settings), request(vec![user("hi")]))
        .await
        .end
        .unwrap();

    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(4), "retried after {waited:?}");
}

#[tokio::test]
async fn a_long_retry_after_is_capped() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::error(429).with_retry_after("60"))
        .push(Reply::text(["ok"]));
    let mut settings = settings(&llm);
    settings.retry_max_delay = Duration::from_millis(300);
    let started = Instant::now();
    ask(&model(settings), request(vec![user("hi")]))
        .await
        .end
        .unwrap();

    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(2), "retried after {waited:?}");
}

#[tokio::test]
async fn retries_stop_after_the_maximum_with_the_last_error() {
    let llm = FakeLlm::start().await;
    for _ in 0..5 {
        llm.push(Reply::error(500).with_body("upstream on fire"));
    }
    let mut settings = settings(&llm);
    settings.max_retries = 2;
    let error = model(settings)
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(
        error.cause(),
        &LlmError::Provider {
            status: 500,
            message: "upstream on fire".to_owned()
        }
    );
    assert_eq!(llm.request_count(), 3);
}

#[tokio::test]
async fn no_retries_means_one_request_even_on_a_rate_limit() {
    // async-openai's own retry layer would try a 429 three more times.
    let llm = FakeLlm::start().await;
    llm.push(Reply::error(429).with_body("slow down"))
        .push(Reply::text(["too late"]));
    let mut settings = settings(&llm);
    settings.max_retries = 0;
    let error = model(settings)
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(
        error.cause(),
        &LlmError::Provider {
            status: 429,
            message: "slow down".to_owned()
        }
    );
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_carries_the_providers_message() {
    let llm = FakeLlm::start().await;
    let body =
        r#"{"error": {"message": "The model `gpt-nope` does not exist", "type": "invalid_request_error"}}"#;
    llm.push(Reply::error(404).with_body(body))
        .push(Reply::text(["never"]));
    let error = model(settings(&llm))
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(
        error.cause(),
        &LlmError::Provider {
            status: 404,
            message: "The model `gpt-nope` does not exist".to_owned()
        }
    );
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn the_api_key_quoted_by_the_provider_is_redacted() {
    let llm = FakeLlm::start().await;
    let body = format!(r#"{{"error": {{"message": "Incorrect API key provided: {API_KEY}."}}}}"#);
    llm.push(Reply::error(401).with_body(&body));
    let error = model(settings(&llm))
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(
        error.cause(),
        &LlmError::Provider {
            status: 401,
            message: "Incorrect API key provided: [redacted].".to_owned()
        }
    );
    assert!(!format!("{error} {error:?}").contains(API_KEY));
}

#[tokio::test]
async fn a_connection_lost_before_the_first_chunk_is_retried() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::broken()).push(Reply::text(["again"]));
    let answer = ask(&model(settings(&llm)), request(vec![user("hi")])).await;

    assert_eq!(answer.texts(), ["again"]);
    assert_eq!(answer.outcome().retries, 1);
}

#[tokio::test]
async fn an_unreachable_provider_is_retried_then_reported() {
    let llm = FakeLlm::start().await;
    let mut settings = settings(&llm);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    settings.base_url = format!("http://127.0.0.1:{port}/v1");
    settings.max_retries = 2;
    let mut delays = Vec::new();
    let started = Instant::now();
    let error = model(settings)
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();
    delays.push(started.elapsed());

    assert!(matches!(error.cause(), LlmError::Connection(_)), "{error:?}");
    // Two retries after at least 10 ms and 20 ms of backoff.
    assert!(delays[0] >= Duration::from_millis(30), "{delays:?}");
}

#[tokio::test]
async fn nothing_is_retried_once_text_has_streamed() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["half an ans"]).then_break())
        .push(Reply::text(["whole answer"]));
    let answer = read(
        model(settings(&llm))
            .stream(request(vec![user("hi")]))
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(answer.texts(), ["half an ans"]);
    assert!(
        matches!(answer.end, Err(LlmError::Connection(_))),
        "{:?}",
        answer.end.err()
    );
    assert_eq!(llm.request_count(), 1);
    assert_eq!(llm.queued(), 1);
}

#[tokio::test]
async fn a_rate_limit_for_lack_of_quota_is_not_retried() {
    let llm = FakeLlm::start().await;
    let body = r#"{"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota", "code": "insufficient_quota"}}"#;
    llm.push(Reply::error(429).with_body(body))
        .push(Reply::text(["never"]));
    let error = model(settings(&llm))
        .stream(request(vec![user("hi")]))
        .await
        .err()
        .unwrap();

    assert_eq!(
        error.cause(),
        &LlmError::Provider {
            status: 429,
            message: "You exceeded your current quota.".to_owned()
        }
    );
    assert_eq!(llm.request_count(), 1);
}
