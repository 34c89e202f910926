//! The issue's proof: register, define an HTTP tool that needs approval, run, approve, see the
//! final answer in the conversation and every step in the run.

use serde_json::{Value, json};
use testkit::Reply;

use super::support::{Flow, MODEL, only_call, tool_messages};

#[tokio::test]
async fn an_approved_tool_call_is_sent_once_signed_and_its_output_reaches_the_model_and_the_user() {
    let flow = Flow::start().await;
    flow.tool("weather", "/weather", None).await;
    let agent = flow.agent(&["weather"], json!({ "weather": "always" })).await;
    // The arguments arrive in pieces that are not JSON on their own.
    flow.llm
        .push(
            Reply::tool_call("call_abc", "weather", [r#"{"ci"#, r#"ty": "Os"#, r#"lo"}"#]).with_usage(41, 7),
        )
        .push(Reply::words("It is sunny in Oslo.").with_usage(77, 5));

    let (conversation_id, run_id) = flow.run(&agent, "Weather in Oslo?").await;
    let waiting = flow.run_reaching(&run_id, "awaiting_approval").await;
    let call = only_call(&waiting, 0);
    assert_eq!(call["status"], "awaiting_approval", "{waiting:#}");
    assert_eq!(call["approval"], "pending", "{waiting:#}");
    assert_eq!(call["name"], "weather");
    assert_eq!(call["arguments"], r#"{"city": "Oslo"}"#, "the pieces joined");
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    assert_eq!(
        flow.tools.request_count(),
        0,
        "nothing is sent before the approval"
    );
    assert_eq!(flow.llm.request_count(), 1);

    let approved = flow
        .app
        .with_bearer(&flow.token)
        .post_json(
            &format!("/v1/runs/{run_id}/tool-calls/{call_id}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(approved.status(), reqwest::StatusCode::ACCEPTED);
    let run = flow.run_reaching(&run_id, "completed").await;

    // The tool server saw exactly one request, signed, carrying the arguments and the call's key.
    let requests = flow.tools.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let sent = &requests[0];
    assert_eq!(sent.signature_valid, Some(true), "{sent:#?}");
    assert_eq!(sent.json(), json!({ "city": "Oslo" }));
    assert_eq!(sent.header("idempotency-key"), Some(call_id.as_str()));
    assert_eq!(sent.header("agentry-run-id"), Some(run_id.as_str()));
    assert_eq!(sent.header("agentry-tool"), Some("weather"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let tool_output = json!({ "path": "/weather", "received": { "city": "Oslo" } });

    // The model was asked twice, the second time with the tool's output in a `tool` message.
    let asked = flow.llm.requests();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].authorization.as_deref(), Some("Bearer test-key"));
    assert_eq!(asked[0].body["model"], MODEL);
    assert_eq!(asked[0].body["stream"], true);
    assert_eq!(asked[0].body["stream_options"]["include_usage"], true);
    assert_eq!(asked[0].last_user_message(), Some("Weather in Oslo?"));
    assert_eq!(asked[0].messages()[0]["role"], "system");
    assert_eq!(asked[0].body["tools"][0]["function"]["name"], "weather");
    let second = asked[1].messages();
    let assistant = second
        .iter()
        .find(|message| message["role"] == "assistant")
        .expect("the model's own call is sent back");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_abc", "{assistant}");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"], r#"{"city": "Oslo"}"#,
        "{assistant}"
    );
    let tools = tool_messages(&asked[1]);
    assert_eq!(tools.len(), 1, "{second:#?}");
    assert_eq!(tools[0]["tool_call_id"], "call_abc");
    let told: Value = serde_json::from_str(tools[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(told, tool_output);

    // Every step, with the provider's token counts.
    assert_eq!(run["output"], "It is sunny in Oslo.", "{run:#}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{run:#}");
    assert_eq!(steps[0]["model"], MODEL);
    assert_eq!(steps[0]["status"], "completed");
    assert_eq!(steps[0]["finish_reason"], "tool_calls");
    assert_eq!(steps[0]["prompt_tokens"], 41, "{run:#}");
    assert_eq!(steps[0]["completion_tokens"], 7, "{run:#}");
    assert_eq!(steps[0]["retries"], 0);
    let call = only_call(&run, 0);
    assert_eq!(call["status"], "completed", "{run:#}");
    assert_eq!(call["approval"], "approved");
    assert!(
        call["decided_by"].as_str().unwrap().starts_with("user:"),
        "{run:#}"
    );
    assert_eq!(call["attempts"], 1);
    let recorded: Value = serde_json::from_str(call["output"].as_str().unwrap()).unwrap();
    assert_eq!(recorded, tool_output);
    assert_eq!(steps[1]["finish_reason"], "stop");
    assert_eq!(steps[1]["content"], "It is sunny in Oslo.");
    assert_eq!(steps[1]["prompt_tokens"], 77, "{run:#}");
    assert_eq!(steps[1]["completion_tokens"], 5, "{run:#}");
    assert!(steps[1]["tool_calls"].as_array().unwrap().is_empty());
    assert_eq!(run["usage"]["prompt_tokens"], 41 + 77, "{run:#}");
    assert_eq!(run["usage"]["completion_tokens"], 7 + 5, "{run:#}");
    assert!(run["usage"]["credits"].as_u64().unwrap() > 0, "{run:#}");

    // The conversation: the input, the call, the tool's result, the answer.
    let messages = flow.messages(&conversation_id).await;
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"], "{messages:#?}");
    assert_eq!(messages[0]["content"], "Weather in Oslo?");
    assert_eq!(messages[1]["tool_calls"][0]["call_id"], call_id.as_str());
    assert_eq!(messages[2]["call_id"], call_id.as_str(), "{messages:#?}");
    assert_eq!(messages[3]["content"], "It is sunny in Oslo.");
    assert!(messages.iter().all(|m| m["run_id"] == run_id.as_str()));

    // Each step once in the log, the call started (with its key) before its outcome.
    let events = flow.events(&run_id).await;
    let types: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        types,
        [
            "run.queued",
            "run.started",
            "llm_call.started",
            "llm_call.completed",
            "message.completed",
            "tool_call.requested",
            "tool_call.approved",
            "run.resumed",
            "tool_call.started",
            "tool_call.completed",
            "llm_call.started",
            "message.delta",
            "llm_call.completed",
            "message.completed",
            "run.completed",
        ],
        "{events:#?}"
    );
    let started = &events[8].1;
    assert_eq!(started["idempotency_key"], call_id.as_str(), "{started}");
    assert_eq!(started["attempt"], 1);
    flow.cleanup().await;
}
