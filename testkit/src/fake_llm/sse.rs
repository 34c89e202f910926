//! A streamed [`Script`] on the wire: OpenAI's chat-completion chunks as server-sent events,
//! sent by a body stream that notices when the client goes away.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};

use super::Counters;
use super::reply::{Ending, Script, UsageReport};

/// How often a stalled response sends an SSE comment. Comments carry no chunk, so the client
/// still sees a stall; but hyper notices that the client closed the connection only when it
/// writes, so without them a cancelled call during a stall would go unnoticed.
const HEARTBEAT: Duration = Duration::from_millis(50);

/// The `Content-Length` a breaking response announces, far beyond what it sends: when the
/// body ends short of it, hyper closes the connection, and the client sees a body cut off.
/// (An error from the body stream would not do: poem ends the body cleanly on it.)
pub(super) const BREAK_LENGTH: u64 = 1 << 30;

/// A fixed `created` time: the fake has no use for clocks.
const CREATED: u64 = 1_700_000_000;

/// The SSE events of `script`, answering `request`, each `data: …\n\n`.
pub(super) fn events(script: &Script, request: &Value, id: &str) -> Vec<String> {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("fake");
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        format!("data: {chunk}\n\n")
    };
    let delta = |delta: Value| json!([{"index": 0, "delta": delta, "finish_reason": null}]);

    // A reply with nothing to say that stalls or breaks sends no chunk at all, not even the role.
    let silent = script.text.is_empty() && script.tool_calls.is_empty();
    if silent && script.ending != Ending::Complete {
        return Vec::new();
    }
    let mut events = vec![chunk(delta(json!({"role": "assistant", "content": ""})), None)];
    events.extend(
        script
            .text
            .iter()
            .map(|text| chunk(delta(json!({"content": text})), None)),
    );
    for (index, call) in script.tool_calls.iter().enumerate() {
        let opening = json!({"tool_calls": [{
            "index": index, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }]});
        events.push(chunk(delta(opening), None));
        events.extend(call.arguments.iter().map(|piece| {
            let more = json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            chunk(delta(more), None)
        }));
    }
    if script.ending != Ending::Complete {
        return events;
    }
    let finish_reason = script.finish_reason.clone().unwrap_or_else(|| {
        let reason = if script.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        reason.to_owned()
    });
    let finish = json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]);
    events.push(chunk(finish, None));
    if let Some((prompt, completion)) = usage(script, request) {
        let usage = json!({
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
        });
        events.push(chunk(json!([]), Some(usage)));
    }
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// The usage chunk's numbers, if it is sent.
fn usage(script: &Script, request: &Value) -> Option<(u64, u64)> {
    match script.usage {
        UsageReport::Absent => None,
        UsageReport::Given {
            prompt_tokens,
            completion_tokens,
        } => Some((prompt_tokens, completion_tokens)),
        UsageReport::Counted => {
            let chunks = script.text.len()
                + script
                    .tool_calls
                    .iter()
                    .map(|call| call.arguments.len())
                    .sum::<usize>();
            Some((prompt_words(request), chunks as u64))
        }
    }
}

/// The words of every message's text content in `request`.
pub(super) fn prompt_words(request: &Value) -> u64 {
    let messages = request.get("messages").and_then(Value::as_array);
    messages
        .into_iter()
        .flatten()
        .filter_map(|message| message.get("content").and_then(Value::as_str))
        .map(|content| content.split_whitespace().count() as u64)
        .sum()
}

/// Counts the response as closed early when dropped before it was marked finished: hyper
/// drops the body when the client closes the connection.
pub(super) struct CloseWatch {
    counters: Arc<Counters>,
    finished: bool,
}

impl CloseWatch {
    pub(super) fn new(counters: Arc<Counters>) -> Self {
        counters.open.fetch_add(1, Ordering::SeqCst);
        Self {
            counters,
            finished: false,
        }
    }

    /// The response ended as scripted: `completed` when it sent its whole answer, not when
    /// it broke the connection on purpose.
    fn finish(&mut self, completed: bool) {
        self.finished = true;
        if completed {
            self.counters.completed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for CloseWatch {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.counters.closed_early.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Sending {
    events: VecDeque<String>,
    sent: usize,
    every: Duration,
    ending: Ending,
    watch: CloseWatch,
}

/// The body: `events`, each but the first after `every`, then the `ending`.
pub(super) fn body(
    events: Vec<String>,
    every: Duration,
    ending: Ending,
    watch: CloseWatch,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let sending = Sending {
        events: events.into(),
        sent: 0,
        every,
        ending,
        watch,
    };
    futures::stream::unfold(Some(sending), |sending| async move {
        let mut sending = sending?;
        if let Some(event) = sending.events.pop_front() {
            if sending.sent > 0 && !sending.every.is_zero() {
                tokio::time::sleep(sending.every).await;
            }
            sending.sent += 1;
            return Some((Ok(Bytes::from(event)), Some(sending)));
        }
        match sending.ending {
            Ending::Complete => {
                sending.watch.finish(true);
                None
            }
            Ending::Stall => {
                tokio::time::sleep(HEARTBEAT).await;
                Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(sending)))
            }
            // The response promised more bytes than it sends (see `BREAK_LENGTH`).
            Ending::Break => {
                sending.watch.finish(false);
                None
            }
        }
    })
}
