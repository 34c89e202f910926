//! Text and tool calls as they stream, and the usage at the end.

use std::time::Duration;

use runtime::llm::{ToolCall, Usage};
use testkit::{FakeLlm, Reply};

use crate::helpers::{ask, model, request, settings, user};

#[tokio::test]
async fn text_deltas_are_yielded_as_they_arrive() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["Hel", "lo, ", "world"]).every(Duration::from_millis(150)));
    let answer = ask(&model(settings(&llm)), request(vec![user("hi")])).await;

    assert_eq!(answer.texts(), ["Hel", "lo, ", "world"]);
    let outcome = answer.outcome();
    assert_eq!(outcome.content, "Hello, world");
    assert_eq!(outcome.finish_reason, "stop");
    assert!(outcome.tool_calls.is_empty());
    assert_eq!(outcome.retries, 0);
    // The first piece came while the provider was still writing (not buffered to the end).
    let first = answer.deltas[0].1;
    assert!(
        answer.ended_at - first >= Duration::from_millis(250),
        "{:?}",
        answer.ended_at - first
    );
}

#[tokio::test]
async fn tool_call_arguments_are_joined_from_their_pieces() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool_call(
        "call_7",
        "weather",
        [r#"{"ci"#, r#"ty": "Os"#, r#"lo"}"#],
    ));
    let answer = ask(&model(settings(&llm)), request(vec![user("weather?")])).await;

    assert!(answer.deltas.is_empty());
    let outcome = answer.outcome();
    assert_eq!(outcome.finish_reason, "tool_calls");
    assert_eq!(
        outcome.tool_calls,
        [ToolCall {
            call_id: "call_7".to_owned(),
            name: "weather".to_owned(),
            arguments: r#"{"city": "Oslo"}"#.to_owned(),
        }]
    );
}

#[tokio::test]
async fn several_tool_calls_in_one_turn_keep_their_order_and_text() {
    let llm = FakeLlm::start().await;
    llm.push(
        Reply::text(["Let me check."])
            .with_tool_call("call_a", "weather", [r#"{"city":"#, r#""Oslo"}"#])
            .with_tool_call("call_b", "clock", ["{", r#""tz": "CET""#, "}"]),
    );
    let outcome = ask(&model(settings(&llm)), request(vec![user("weather and time?")]))
        .await
        .end
        .unwrap();

    assert_eq!(outcome.content, "Let me check.");
    let calls: Vec<_> = outcome
        .tool_calls
        .iter()
        .map(|call| (call.call_id.as_str(), call.name.as_str(), call.arguments.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("call_a", "weather", r#"{"city":"Oslo"}"#),
            ("call_b", "clock", r#"{"tz": "CET"}"#)
        ]
    );
}

#[tokio::test]
async fn usage_is_taken_from_the_final_chunk() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["fine"]).with_usage(123, 45));
    let outcome = ask(&model(settings(&llm)), request(vec![user("how are you?")]))
        .await
        .end
        .unwrap();

    assert_eq!(
        outcome.usage,
        Usage {
            prompt_tokens: 123,
            completion_tokens: 45
        }
    );
    assert!(outcome.usage_reported);
}

#[tokio::test]
async fn usage_not_reported_is_estimated_at_four_characters_a_token() {
    let llm = FakeLlm::start().await;
    llm.push(
        Reply::text(["twelve chars"])
            .with_tool_call("c", "abc", [r#"{"x":1}"#])
            .without_usage(),
    );
    // 17 characters of request: 5 tokens; 12 of text + 3 of name + 7 of arguments: 6 tokens.
    let outcome = ask(&model(settings(&llm)), request(vec![user("seventeen letters")]))
        .await
        .end
        .unwrap();

    assert!(!outcome.usage_reported);
    assert_eq!(
        outcome.usage,
        Usage {
            prompt_tokens: 5,
            completion_tokens: 6
        }
    );
}

#[tokio::test]
async fn other_finish_reasons_are_passed_on() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["cut sh"]).with_finish_reason("length"));
    let outcome = ask(&model(settings(&llm)), request(vec![user("long story")]))
        .await
        .end
        .unwrap();
    assert_eq!(outcome.finish_reason, "length");
}

#[tokio::test]
async fn with_nothing_queued_the_fake_echoes_the_user() {
    let llm = FakeLlm::start().await;
    let answer = ask(&model(settings(&llm)), request(vec![user("say this back")])).await;
    assert_eq!(answer.texts(), ["say ", "this ", "back"]);
    assert_eq!(llm.completed(), 1);
}
