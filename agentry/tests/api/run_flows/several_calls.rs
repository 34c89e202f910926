//! Several tool calls in one turn: executed in the model's order, every result sent back.

use serde_json::json;
use testkit::Reply;

use super::support::{Flow, tool_messages};

#[tokio::test]
async fn two_tools_and_one_of_them_twice_in_one_turn_run_in_order_and_all_results_reach_the_model() {
    let flow = Flow::start().await;
    flow.tool("weather", "/weather", None).await;
    flow.tool("clock", "/clock", None).await;
    let agent = flow.agent(&["weather", "clock"], json!("never")).await;
    flow.llm
        .push(
            Reply::tool_call("call_1", "weather", [r#"{"city":"#, r#""Oslo"}"#])
                .with_tool_call("call_2", "clock", [r#"{"city": "Lima"}"#])
                .with_tool_call("call_3", "weather", [r#"{"#, r#""city""#, r#":"Rome"}"#]),
        )
        .push(Reply::words("Oslo, Lima and Rome: done."));

    let (conversation_id, run_id) = flow.run(&agent, "Three things, please").await;
    let run = flow.run_reaching(&run_id, "completed").await;
    assert_eq!(run["output"], "Oslo, Lima and Rome: done.", "{run:#}");

    let calls = run["steps"][0]["tool_calls"].as_array().unwrap();
    let names: Vec<&str> = calls.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["weather", "clock", "weather"], "{run:#}");
    assert!(calls.iter().all(|c| c["status"] == "completed"), "{run:#}");
    let call_ids: Vec<&str> = calls.iter().map(|c| c["call_id"].as_str().unwrap()).collect();

    // The tool server saw them in the model's order, each with its own key, each signed.
    let sent = flow.tools.requests();
    let seen: Vec<(&str, serde_json::Value, Option<&str>)> = sent
        .iter()
        .map(|r| (r.path.as_str(), r.json(), r.header("idempotency-key")))
        .collect();
    assert_eq!(
        seen,
        [
            ("/weather", json!({"city": "Oslo"}), Some(call_ids[0])),
            ("/clock", json!({"city": "Lima"}), Some(call_ids[1])),
            ("/weather", json!({"city": "Rome"}), Some(call_ids[2])),
        ]
    );
    assert!(sent.iter().all(|r| r.signature_valid == Some(true)), "{sent:#?}");

    // The model got the three results, in order, each answering its own call.
    let asked = flow.llm.requests();
    assert_eq!(asked.len(), 2);
    let results = tool_messages(&asked[1]);
    let answered: Vec<&str> = results
        .iter()
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(answered, ["call_1", "call_2", "call_3"], "{results:#?}");
    for (result, city) in results.iter().zip(["Oslo", "Lima", "Rome"]) {
        assert!(result["content"].as_str().unwrap().contains(city), "{result}");
    }

    let messages = flow.messages(&conversation_id).await;
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool", "tool", "assistant"]);
    assert_eq!(messages[1]["tool_calls"].as_array().unwrap().len(), 3);
    flow.cleanup().await;
}
