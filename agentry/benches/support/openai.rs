//! OpenAI's streaming chat protocol as the benches' LLM servers speak it: `data: {chunk}` events,
//! then the finish reason, the usage and `[DONE]`.

use serde_json::{Value, json};

/// One `data: {chunk}` event.
pub fn chunk(choices: Value, usage: Option<Value>) -> String {
    let mut chunk = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
        "model": "bench", "choices": choices,
    });
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    format!("data: {chunk}\n\n")
}

/// The choices of a chunk carrying `delta` (`{"content": …}`, `{"tool_calls": …}`, …).
pub fn delta(delta: Value) -> Value {
    json!([{ "index": 0, "delta": delta, "finish_reason": null }])
}

/// The end of an answer: finish reason, usage, `[DONE]`.
pub fn ending(finish_reason: &str, prompt_tokens: u64, completion_tokens: u64) -> String {
    let finish = json!([{ "index": 0, "delta": {}, "finish_reason": finish_reason }]);
    let usage = json!({
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    format!(
        "{}{}data: [DONE]\n\n",
        chunk(finish, None),
        chunk(json!([]), Some(usage))
    )
}
