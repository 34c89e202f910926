//! What a tool receives, and how its 2xx answers reach the model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use runtime::tools::ToolOutcome;
use serde_json::{Value, json};

use crate::helpers::{ToolServer, Verdict, endpoint, endpoint_with, invoker, request};

#[tokio::test]
async fn the_tool_receives_a_signed_post_of_the_arguments_with_the_call_headers() {
    let server = ToolServer::start().await;
    let call = request();

    let outcome = invoker(true).invoke(&endpoint(&server.url("/echo")), &call).await;

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let seen = &requests[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap(),
        call.arguments
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("idempotency-key"),
        Some(call.idempotency_key.as_str())
    );
    assert_eq!(
        seen.header("agentry-run-id"),
        Some(call.run_id.to_string().as_str())
    );
    assert_eq!(seen.header("agentry-tool"), Some("get_weather"));
    assert_eq!(
        seen.header("user-agent"),
        Some(concat!("agentry/", env!("CARGO_PKG_VERSION")))
    );
    match &seen.signature {
        Verdict::Valid { age_seconds } => assert!((0..=5).contains(age_seconds), "age {age_seconds}"),
        invalid => panic!("the tool server refused the signature: {invalid:?}"),
    }
    let ToolOutcome::Output { status, body } = outcome else {
        panic!("expected an output, got {outcome:?}");
    };
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "received": call.arguments })
    );
}

#[tokio::test]
async fn a_signature_made_with_another_secret_is_refused_by_the_tool() {
    let server = ToolServer::start().await;
    let wrong = endpoint_with(&server.url("/echo"), "whsec_someone_else", Duration::from_secs(5));

    invoker(true).invoke(&wrong, &request()).await;

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].signature, Verdict::Invalid("HMAC mismatch".into()));
}

#[tokio::test]
async fn every_retry_of_a_call_carries_the_same_key_and_a_valid_signature() {
    let server = ToolServer::start().await;
    let call = request();
    let invoker = invoker(true);

    invoker.invoke(&endpoint(&server.url("/echo")), &call).await;
    invoker.invoke(&endpoint(&server.url("/echo")), &call).await;

    let keys: Vec<_> = server
        .requests()
        .iter()
        .map(|seen| {
            (
                seen.header("idempotency-key").map(str::to_owned),
                seen.signature.clone(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 2);
    for (key, signature) in keys {
        assert_eq!(key.as_deref(), Some(call.idempotency_key.as_str()));
        assert!(matches!(signature, Verdict::Valid { .. }), "{signature:?}");
    }
}

#[tokio::test]
async fn a_plain_text_answer_reaches_the_model_as_it_is() {
    let server = ToolServer::start().await;

    let outcome = invoker(true)
        .invoke(&endpoint(&server.url("/text")), &request())
        .await;

    assert_eq!(
        outcome,
        ToolOutcome::Output {
            status: 200,
            body: "sunny, 21 degrees (this is not JSON)".into()
        }
    );
    assert_eq!(outcome.for_model(), "sunny, 21 degrees (this is not JSON)");
}
