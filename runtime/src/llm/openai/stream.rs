//! Turning the provider's chunks into [`ChatEvent`]s and, at the end, the [`ChatOutcome`].
//!
//! Text deltas are yielded as they come. Tool calls arrive in pieces keyed by `index`: the
//! first piece of a call carries its id and name, the following ones only more of its
//! arguments, which are joined. Several calls may stream in one turn, interleaved or one
//! after the other. Usage comes in a final chunk without choices (asked for with
//! `stream_options.include_usage`); some servers put it on the last choice chunk instead,
//! and some send none, in which case it is estimated (see `usage.rs`).

use std::collections::HashMap;
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionMessageToolCallChunk, ChatCompletionResponseStream, CreateChatCompletionStreamResponse,
    FinishReason,
};
use futures::StreamExt;

use super::retry::Failure;
use super::transport::Redactor;
use super::usage;
use crate::llm::{ChatEvent, ChatOutcome, ChatStream, LlmError, ToolCall, Usage};

/// What has arrived of one answer so far.
#[derive(Debug)]
pub(super) struct Assembly {
    content: String,
    calls: Vec<ToolCall>,
    /// Where the call of each stream `index` is in `calls`.
    call_at: HashMap<u32, usize>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    request_chars: usize,
    retries: u32,
}

impl Assembly {
    /// An empty answer to a request of `request_chars` characters, opened after `retries`
    /// retries.
    pub(super) fn new(request_chars: usize, retries: u32) -> Self {
        Self {
            content: String::new(),
            calls: Vec::new(),
            call_at: HashMap::new(),
            finish_reason: None,
            usage: None,
            request_chars,
            retries,
        }
    }

    /// Takes in one chunk; returns its text, if it has any.
    pub(super) fn push(&mut self, chunk: CreateChatCompletionStreamResponse) -> Option<String> {
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage {
                prompt_tokens: usage.prompt_tokens.into(),
                completion_tokens: usage.completion_tokens.into(),
            });
        }
        // We never ask for more than one choice.
        let choice = chunk.choices.into_iter().find(|choice| choice.index == 0)?;
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(finish_reason(reason).to_owned());
        }
        for piece in choice.delta.tool_calls.into_iter().flatten() {
            self.push_tool_call(piece);
        }
        // A refusal is the model's answer too, and the only text the user will get.
        let text: String = [choice.delta.content, choice.delta.refusal]
            .into_iter()
            .flatten()
            .collect();
        if text.is_empty() {
            return None;
        }
        self.content.push_str(&text);
        Some(text)
    }

    fn push_tool_call(&mut self, piece: ChatCompletionMessageToolCallChunk) {
        let function = piece.function.unwrap_or_default();
        let known = self.call_at.get(&piece.index).copied();
        // A piece with a new id at a known index starts another call: some compatible
        // servers number every call 0.
        let starts_another = match (known, &piece.id) {
            (Some(at), Some(id)) => !self.calls[at].call_id.is_empty() && self.calls[at].call_id != *id,
            (None, _) => true,
            (Some(_), None) => false,
        };
        let at = if starts_another {
            self.calls.push(ToolCall {
                call_id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            self.call_at.insert(piece.index, self.calls.len() - 1);
            self.calls.len() - 1
        } else {
            known.unwrap_or_default()
        };
        let call = &mut self.calls[at];
        if call.call_id.is_empty() {
            call.call_id = piece.id.unwrap_or_default();
        }
        if call.name.is_empty() {
            call.name = function.name.unwrap_or_default();
        }
        call.arguments.push_str(&function.arguments.unwrap_or_default());
    }

    /// The outcome, once the provider ended the stream. An answer without a finish reason
    /// was cut off (the connection closed early), not finished.
    pub(super) fn finish(mut self) -> Result<ChatOutcome, Failure> {
        let Some(finish_reason) = self.finish_reason else {
            return Err(Failure::Connection(
                "the provider ended the stream before the answer finished".to_owned(),
            ));
        };
        for (position, call) in self.calls.iter_mut().enumerate() {
            if call.call_id.is_empty() {
                call.call_id = format!("call_{position}");
            }
        }
        let usage_reported = self.usage.is_some();
        let usage = self
            .usage
            .unwrap_or_else(|| usage::estimate(self.request_chars, &self.content, &self.calls));
        Ok(ChatOutcome {
            content: self.content,
            tool_calls: self.calls,
            finish_reason,
            usage,
            usage_reported,
            retries: self.retries,
        })
    }
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::FunctionCall => "function_call",
    }
}

/// Where the answer's stream is.
struct Streaming {
    first: Option<CreateChatCompletionStreamResponse>,
    chunks: ChatCompletionResponseStream,
    assembly: Assembly,
    idle_timeout: Duration,
    redactor: Redactor,
}

/// The answer as a [`ChatStream`]: `first` (already received), then the rest of `chunks`,
/// each within `idle_timeout` of the one before; the outcome, or an error, ends it. Dropping
/// the stream drops async-openai's, whose reader then drops the HTTP response, which closes
/// the connection.
pub(super) fn answer(
    first: CreateChatCompletionStreamResponse,
    chunks: ChatCompletionResponseStream,
    assembly: Assembly,
    idle_timeout: Duration,
    redactor: Redactor,
) -> ChatStream {
    let state = Streaming {
        first: Some(first),
        chunks,
        assembly,
        idle_timeout,
        redactor,
    };
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            let next = match state.first.take() {
                Some(first) => Ok(Some(Ok(first))),
                None => tokio::time::timeout(state.idle_timeout, state.chunks.next()).await,
            };
            let failure = match next {
                Ok(Some(Ok(chunk))) => match state.assembly.push(chunk) {
                    Some(text) => return Some((Ok(ChatEvent::TextDelta(text)), Some(state))),
                    None => continue,
                },
                Ok(None) => match state.assembly.finish() {
                    Ok(outcome) => return Some((Ok(ChatEvent::Done(outcome)), None)),
                    Err(failure) => failure,
                },
                Ok(Some(Err(error))) => Failure::from(error),
                Err(_) => Failure::Timeout(state.idle_timeout),
            };
            let error: LlmError = failure.into_llm_error(&state.redactor);
            return Some((Err(error), None));
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;

    fn chunk(choices: Value, usage: Option<Value>) -> CreateChatCompletionStreamResponse {
        let mut chunk = json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        serde_json::from_value(chunk).unwrap()
    }

    fn call_piece(
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) -> CreateChatCompletionStreamResponse {
        let mut piece = json!({"index": index, "function": {"arguments": arguments}});
        if let Some(id) = id {
            piece["id"] = json!(id);
        }
        if let Some(name) = name {
            piece["function"]["name"] = json!(name);
        }
        chunk(json!([{"index": 0, "delta": {"tool_calls": [piece]}}]), None)
    }

    fn finish(reason: &str) -> CreateChatCompletionStreamResponse {
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": reason}]), None)
    }

    fn calls(outcome: &ChatOutcome) -> Vec<(&str, &str, &str)> {
        outcome
            .tool_calls
            .iter()
            .map(|call| (call.call_id.as_str(), call.name.as_str(), call.arguments.as_str()))
            .collect()
    }

    #[test]
    fn interleaved_tool_call_pieces_are_joined_per_index() {
        let mut assembly = Assembly::new(0, 0);
        assembly.push(call_piece(0, Some("a"), Some("first"), "{\"x\""));
        assembly.push(call_piece(1, Some("b"), Some("second"), "[1,"));
        assembly.push(call_piece(0, None, None, ": 1}"));
        assembly.push(call_piece(1, None, None, "2]"));
        assembly.push(finish("tool_calls"));
        let outcome = assembly.finish().unwrap();
        assert_eq!(
            calls(&outcome),
            [("a", "first", "{\"x\": 1}"), ("b", "second", "[1,2]")]
        );
    }

    #[test]
    fn a_new_id_at_a_used_index_starts_another_call() {
        let mut assembly = Assembly::new(0, 0);
        assembly.push(call_piece(0, Some("a"), Some("one"), "{}"));
        assembly.push(call_piece(0, Some("b"), Some("two"), "{"));
        assembly.push(call_piece(0, None, None, "}"));
        assembly.push(finish("tool_calls"));
        let outcome = assembly.finish().unwrap();
        assert_eq!(calls(&outcome), [("a", "one", "{}"), ("b", "two", "{}")]);
    }

    #[test]
    fn the_id_repeated_on_every_piece_is_one_call() {
        let mut assembly = Assembly::new(0, 0);
        assembly.push(call_piece(0, Some("a"), Some("one"), "{"));
        assembly.push(call_piece(0, Some("a"), None, "}"));
        assembly.push(finish("tool_calls"));
        assert_eq!(calls(&assembly.finish().unwrap()), [("a", "one", "{}")]);
    }

    #[test]
    fn a_call_without_an_id_gets_one() {
        let mut assembly = Assembly::new(0, 0);
        assembly.push(call_piece(0, None, Some("one"), "{}"));
        assembly.push(finish("tool_calls"));
        assert_eq!(calls(&assembly.finish().unwrap()), [("call_0", "one", "{}")]);
    }

    #[test]
    fn usage_on_the_last_choice_chunk_counts_as_reported() {
        let mut assembly = Assembly::new(0, 2);
        assembly.push(chunk(json!([{"index": 0, "delta": {"content": "hi"}}]), None));
        let usage = json!({"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8});
        let last = json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]);
        assembly.push(chunk(last, Some(usage)));
        let outcome = assembly.finish().unwrap();
        assert!(outcome.usage_reported);
        assert_eq!(
            outcome.usage,
            Usage {
                prompt_tokens: 7,
                completion_tokens: 1
            }
        );
        assert_eq!(outcome.retries, 2);
    }

    #[test]
    fn a_refusal_is_text() {
        let mut assembly = Assembly::new(0, 0);
        let refusal = json!([{"index": 0, "delta": {"refusal": "I can't help with that."}}]);
        assert_eq!(
            assembly.push(chunk(refusal, None)).as_deref(),
            Some("I can't help with that.")
        );
    }

    #[test]
    fn a_stream_ended_without_a_finish_reason_was_cut_off() {
        let mut assembly = Assembly::new(0, 0);
        assembly.push(chunk(json!([{"index": 0, "delta": {"content": "half"}}]), None));
        assert!(matches!(assembly.finish(), Err(Failure::Connection(_))));
    }
}
