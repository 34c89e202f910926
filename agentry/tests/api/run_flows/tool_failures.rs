//! Tool failures go back to the model as tool errors and never stop the run.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::Reply;

use super::support::{Flow, only_call, tool_messages};

/// docs/tools.md: the model is told `tool error (<code>): <detail>`.
fn assert_told(message: &Value, code: &str) {
    let content = message["content"].as_str().unwrap();
    assert!(
        content.starts_with(&format!("tool error ({code}): ")),
        "the model was not told {code}: {message}"
    );
}

#[tokio::test]
async fn bad_arguments_an_unknown_tool_an_error_status_and_a_timeout_each_reach_the_model_and_the_run_completes()
 {
    let flow = Flow::start().await;
    flow.tool("weather", "/weather", None).await;
    flow.tool("broken", "/status/500", None).await;
    flow.tool("sluggish", "/slow/4000", Some(1_000)).await;
    let agent = flow
        .agent(&["weather", "broken", "sluggish"], json!("never"))
        .await;
    flow.llm
        .push(
            // `town` is not in the schema, `city` is missing.
            Reply::tool_call("c_invalid", "weather", [r#"{"town": "#, r#""Oslo"}"#])
                .with_tool_call("c_unknown", "teleport", [r#"{"city": "Mars"}"#])
                .with_tool_call("c_500", "broken", [r#"{"city": "Oslo"}"#])
                .with_tool_call("c_slow", "sluggish", [r#"{"city": "Oslo"}"#]),
        )
        .push(Reply::words("Nothing worked, sorry."));

    let (conversation_id, run_id) = flow.run(&agent, "Try everything").await;
    let run = flow.run_reaching(&run_id, "completed").await;
    assert_eq!(run["output"], "Nothing worked, sorry.", "{run:#}");

    let calls = run["steps"][0]["tool_calls"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap(),
                c["error"]["code"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("failed", "invalid_arguments"),
            ("failed", "unknown_tool"),
            ("failed", "error_status"),
            ("failed", "timeout"),
        ],
        "{run:#}"
    );
    assert_eq!(
        calls[0]["attempts"], 0,
        "invalid arguments are never sent: {run:#}"
    );
    assert_eq!(calls[1]["attempts"], 0, "{run:#}");
    assert!(
        calls[2]["error"]["detail"].as_str().unwrap().contains("500"),
        "{run:#}"
    );

    // Only the two calls with a tool and valid arguments were sent.
    let paths: Vec<String> = flow.tools.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/status/500", "/slow/4000"]);

    let asked = flow.llm.requests();
    assert_eq!(asked.len(), 2);
    let told = tool_messages(&asked[1]);
    assert_eq!(told.len(), 4, "{told:#?}");
    for (message, (code, model_call_id)) in told.iter().zip([
        ("invalid_arguments", "c_invalid"),
        ("unknown_tool", "c_unknown"),
        ("error_status", "c_500"),
        ("timeout", "c_slow"),
    ]) {
        assert_eq!(message["tool_call_id"], model_call_id);
        assert_told(message, code);
    }
    let messages = flow.messages(&conversation_id).await;
    let results: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(results.len(), 4, "{messages:#?}");
    assert!(
        flow.event_types(&run_id)
            .await
            .iter()
            .filter(|t| *t == "tool_call.failed")
            .count()
            == 4
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn a_tool_on_a_private_address_is_refused_when_private_networks_are_not_allowed() {
    let flow = Flow::start_with(|settings| settings.runs.tools_allow_private_networks = false).await;
    flow.tool("weather", "/weather", None).await;
    let agent = flow.agent(&["weather"], json!("never")).await;
    flow.llm
        .push(Reply::tool_call("call_1", "weather", [r#"{"city": "Oslo"}"#]))
        .push(Reply::words("I could not reach it."));

    let (_, run_id) = flow.run(&agent, "Weather?").await;
    let run = flow.run_reaching(&run_id, "completed").await;
    let call = only_call(&run, 0);
    assert_eq!(call["status"], "failed", "{run:#}");
    assert_eq!(call["error"]["code"], "private_network", "{run:#}");
    let detail = call["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("127.0.0.1") && detail.contains("loopback"),
        "{detail}"
    );

    // Give a request that slipped through time to arrive: none may.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        flow.tools.request_count(),
        0,
        "nothing reached the private address"
    );
    let told = tool_messages(&flow.llm.requests()[1]);
    assert_eq!(told.len(), 1);
    assert_told(&told[0], "private_network");
    flow.cleanup().await;
}
