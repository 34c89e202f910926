//! Every way a call can fail is an outcome with its own code, and none of them waits past the
//! timeout, reads past the limit, follows a redirect or repeats the secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use runtime::tools::{DEFAULT_MAX_RESPONSE_BYTES, ToolFailure, ToolOutcome};

use crate::helpers::{
    SECRET, ToolServer, endpoint, endpoint_with, failure_page, invoker, invoker_with_limit, request,
};

fn failed(outcome: ToolOutcome) -> (ToolFailure, String) {
    match outcome {
        ToolOutcome::Failed { failure, detail } => {
            assert!(
                !detail.contains(SECRET),
                "the detail repeats the secret: {detail}"
            );
            (failure, detail)
        }
        output => panic!("expected a failure, got {output:?}"),
    }
}

#[tokio::test]
async fn a_tool_slower_than_its_timeout_is_a_timeout() {
    let server = ToolServer::start().await;
    let slow = endpoint_with(&server.url("/slow"), SECRET, Duration::from_millis(400));

    let started = Instant::now();
    let (failure, detail) = failed(invoker(true).invoke(&slow, &request()).await);

    assert_eq!(failure, ToolFailure::Timeout);
    assert_eq!(detail, "the tool did not answer within 400 ms");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_timeout_covers_reading_the_whole_answer() {
    let server = ToolServer::start().await;
    let trickle = endpoint_with(&server.url("/trickle"), SECRET, Duration::from_millis(700));

    let started = Instant::now();
    let (failure, _) = failed(invoker(true).invoke(&trickle, &request()).await);

    assert_eq!(failure, ToolFailure::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_error_status_is_reported_with_a_bounded_excerpt_of_the_body() {
    let server = ToolServer::start().await;

    let (failure, detail) = failed(
        invoker(true)
            .invoke(&endpoint(&server.url("/fail")), &request())
            .await,
    );

    assert_eq!(failure, ToolFailure::ErrorStatus { status: 500 });
    assert!(
        detail.starts_with("the tool answered 500 Internal Server Error: database exploded: stack frame;"),
        "{detail}"
    );
    assert!(
        detail.ends_with('…'),
        "the excerpt is not marked as cut: {detail}"
    );
    assert!(detail.len() < 700, "{} bytes of detail", detail.len());
    assert!(failure_page().len() > 10_000);
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_the_limit() {
    let server = ToolServer::start().await;
    let endless = endpoint_with(&server.url("/endless"), SECRET, Duration::from_secs(10));

    let started = Instant::now();
    let (failure, detail) = failed(invoker(true).invoke(&endless, &request()).await);

    assert_eq!(
        failure,
        ToolFailure::ResponseTooLarge {
            limit: DEFAULT_MAX_RESPONSE_BYTES
        }
    );
    assert_eq!(
        detail,
        "the tool's answer is larger than the limit of 262144 bytes"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_answer_announced_larger_than_the_limit_is_refused() {
    let server = ToolServer::start().await;

    let (failure, _) = failed(
        invoker(true)
            .invoke(&endpoint(&server.url("/large")), &request())
            .await,
    );

    assert_eq!(failure, ToolFailure::ResponseTooLarge { limit: 256 * 1024 });
}

#[tokio::test]
async fn an_answer_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
    let server = ToolServer::start().await;
    let invoker = invoker_with_limit(true, 1024);

    let exact = invoker
        .invoke(&endpoint(&server.url("/exact-1024")), &request())
        .await;
    let over = invoker
        .invoke(&endpoint(&server.url("/exact-1025")), &request())
        .await;

    assert_eq!(
        exact,
        ToolOutcome::Output {
            status: 200,
            body: "y".repeat(1024)
        }
    );
    assert_eq!(failed(over).0, ToolFailure::ResponseTooLarge { limit: 1024 });
}

#[tokio::test]
async fn a_redirect_is_refused_and_not_followed() {
    let server = ToolServer::start().await;

    let (failure, detail) = failed(
        invoker(true)
            .invoke(&endpoint(&server.url("/redirect")), &request())
            .await,
    );

    assert_eq!(failure, ToolFailure::RedirectRefused { status: 307 });
    assert!(detail.contains(&server.url("/echo")), "{detail}");
    assert_eq!(server.paths(), ["/redirect"], "the redirect was followed");
}

#[tokio::test]
async fn a_tool_nobody_listens_for_is_a_connection_failure() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let (failure, detail) = failed(
        invoker(true)
            .invoke(
                &endpoint(&format!("http://127.0.0.1:{port}/tool?token=abc")),
                &request(),
            )
            .await,
    );

    assert_eq!(failure, ToolFailure::Connection);
    assert!(detail.starts_with("the tool could not be reached: "), "{detail}");
    assert!(
        !detail.contains("token=abc"),
        "the detail repeats the URL: {detail}"
    );
}

#[tokio::test]
async fn urls_that_are_not_absolute_http_are_invalid() {
    for url in [
        "ftp://example.com/tool",
        "file:///etc/passwd",
        "not a url",
        "/relative/path",
        "http://",
        "javascript:alert(1)",
    ] {
        let (failure, detail) = failed(invoker(true).invoke(&endpoint(url), &request()).await);
        assert_eq!(failure, ToolFailure::InvalidUrl, "{url}: {detail}");
        assert!(detail.starts_with("the tool's URL "), "{detail}");
    }
}

#[tokio::test]
async fn a_tool_name_no_header_can_carry_is_an_invalid_request() {
    let server = ToolServer::start().await;
    let mut call = request();
    call.tool = "get\nweather".into();

    let (failure, _) = failed(invoker(true).invoke(&endpoint(&server.url("/echo")), &call).await);

    assert_eq!(failure, ToolFailure::InvalidRequest);
    assert!(server.requests().is_empty());
}
