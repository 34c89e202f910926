//! What goes over the wire.

use runtime::llm::{ChatMessage, ToolCall, ToolSpec};
use serde_json::json;
use testkit::FakeLlm;

use crate::helpers::{API_KEY, ask, model, request, settings, user};

#[tokio::test]
async fn the_call_streams_with_usage_and_carries_its_parameters_and_tools() {
    let llm = FakeLlm::start().await;
    let mut asked = request(vec![user("hi")]);
    asked.temperature = Some(0.25);
    asked.max_output_tokens = Some(300);
    asked.tools = vec![ToolSpec {
        name: "weather".to_owned(),
        description: "The weather in a city.".to_owned(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }];
    ask(&model(settings(&llm)), asked).await.end.unwrap();

    let body = &llm.requests()[0].body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["max_completion_tokens"], 300);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(
        body["tools"],
        json!([{
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }])
    );
}

#[tokio::test]
async fn unset_parameters_and_no_tools_are_left_out() {
    let llm = FakeLlm::start().await;
    ask(&model(settings(&llm)), request(vec![user("hi")]))
        .await
        .end
        .unwrap();

    let body = &llm.requests()[0].body;
    for absent in ["temperature", "max_completion_tokens", "max_tokens", "tools"] {
        assert!(body.get(absent).is_none(), "{absent} was sent: {body}");
    }
}

#[tokio::test]
async fn messages_are_mapped_with_tool_calls_and_tool_results() {
    let llm = FakeLlm::start().await;
    let call = ToolCall {
        call_id: "call_1".to_owned(),
        name: "weather".to_owned(),
        arguments: r#"{"city":"Oslo"}"#.to_owned(),
    };
    let messages = vec![
        ChatMessage::System {
            content: "Be brief.".to_owned(),
        },
        user("Weather in Oslo?"),
        ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![call],
        },
        ChatMessage::Tool {
            call_id: "call_1".to_owned(),
            content: "rain".to_owned(),
        },
        ChatMessage::Assistant {
            content: "It rains.".to_owned(),
            tool_calls: Vec::new(),
        },
        user("Thanks"),
    ];
    ask(&model(settings(&llm)), request(messages)).await.end.unwrap();

    assert_eq!(
        llm.requests()[0].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "tool_calls": [
                {"type": "function", "id": "call_1", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
            {"role": "assistant", "content": "It rains."},
            {"role": "user", "content": "Thanks"},
        ])
    );
}

#[tokio::test]
async fn the_key_is_sent_as_a_bearer_token_to_the_configured_base() {
    let llm = FakeLlm::start().await;
    // A trailing slash on the base must not make the path `//chat/completions`.
    let mut settings = settings(&llm);
    settings.base_url.push('/');
    ask(&model(settings), request(vec![user("hi")]))
        .await
        .end
        .unwrap();

    let recorded = &llm.requests()[0];
    assert_eq!(
        recorded.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
}
