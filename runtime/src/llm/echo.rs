//! The built-in development model `echo`: no provider, no configuration, deterministic.
//!
//! It streams the user's input back word by word. An input `/tool NAME {json}` makes it call
//! tool `NAME` with that JSON (sent as written, valid or not, so the tool-error path can be
//! tried too); after the tool's result it answers with the tool's output. Usage counts one
//! token per word, and the answer stops after `max_output_tokens` words (finish reason
//! `length`).

use async_trait::async_trait;
use futures::stream;

use super::{
    ChatEvent, ChatMessage, ChatModel, ChatOutcome, ChatRequest, ChatStream, LlmError, ToolCall, Usage,
};

/// The model's name.
pub const ECHO: &str = "echo";

/// The `echo` model.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoModel;

#[async_trait]
impl ChatModel for EchoModel {
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let prompt_tokens = request.messages.iter().map(words_in_message).sum();
        let (mut text, tool_calls) = answer(&request.messages);
        // Like a provider, it stops at the answer's limit (which bounds what billing reserves).
        let cut = request
            .max_output_tokens
            .map(|max| word_pieces(&text).take(max as usize).map(str::len).sum::<usize>())
            .filter(|kept| *kept < text.len());
        if let Some(kept) = cut {
            text.truncate(kept);
        }
        let completion_tokens =
            words(&text) + tool_calls.iter().map(|call| words(&call.arguments)).sum::<u64>();
        let finish_reason = match (cut, tool_calls.is_empty()) {
            (Some(_), _) => "length",
            (None, true) => "stop",
            (None, false) => "tool_calls",
        };
        let mut events: Vec<Result<ChatEvent, LlmError>> = word_pieces(&text)
            .map(|piece| Ok(ChatEvent::TextDelta(piece.to_owned())))
            .collect();
        events.push(Ok(ChatEvent::Done(ChatOutcome {
            content: text,
            tool_calls,
            finish_reason: finish_reason.to_owned(),
            usage: Usage {
                prompt_tokens,
                completion_tokens,
            },
            usage_reported: true,
            retries: 0,
        })));
        Ok(Box::pin(stream::iter(events)))
    }
}

/// The text and tool calls `echo` answers to `messages`.
fn answer(messages: &[ChatMessage]) -> (String, Vec<ToolCall>) {
    let trailing_results: Vec<&str> = messages
        .iter()
        .rev()
        .map_while(|message| match message {
            ChatMessage::Tool { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    if !trailing_results.is_empty() {
        let outputs: Vec<&str> = trailing_results.into_iter().rev().collect();
        return (outputs.join("\n"), Vec::new());
    }
    let Some(ChatMessage::User { content }) = messages.last() else {
        return (String::new(), Vec::new());
    };
    match content.trim_start().strip_prefix("/tool ") {
        Some(command) => {
            let command = command.trim_start();
            let (name, arguments) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
            let arguments = match arguments.trim() {
                "" => "{}",
                given => given,
            };
            let call = ToolCall {
                call_id: format!("echo_call_{}", messages.len()),
                name: name.to_owned(),
                arguments: arguments.to_owned(),
            };
            (String::new(), vec![call])
        }
        None => (content.clone(), Vec::new()),
    }
}

/// The text in pieces of one word each, with the whitespace before the next word kept on the
/// piece, so joining the pieces gives the text back exactly.
fn word_pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_start = rest.len() - rest.trim_start().len();
        let after_word = rest[word_start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |end| word_start + end);
        let next_word = rest[after_word..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |start| after_word + start);
        let (piece, remaining) = rest.split_at(next_word);
        rest = remaining;
        Some(piece)
    })
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn words_in_message(message: &ChatMessage) -> u64 {
    match message {
        ChatMessage::System { content }
        | ChatMessage::User { content }
        | ChatMessage::Tool { content, .. } => words(content),
        ChatMessage::Assistant { content, tool_calls } => {
            words(content) + tool_calls.iter().map(|call| words(&call.arguments)).sum::<u64>()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt;

    use super::*;

    fn request(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest {
            model: ECHO.to_owned(),
            messages,
            tools: Vec::new(),
            temperature: None,
            max_output_tokens: None,
        }
    }

    async fn run(messages: Vec<ChatMessage>) -> (Vec<String>, ChatOutcome) {
        let mut stream = EchoModel.stream(request(messages)).await.unwrap();
        let mut deltas = Vec::new();
        while let Some(event) = stream.next().await {
            match event.unwrap() {
                ChatEvent::TextDelta(text) => deltas.push(text),
                ChatEvent::Done(outcome) => return (deltas, outcome),
            }
        }
        panic!("the stream ended without an outcome");
    }

    fn user(text: &str) -> ChatMessage {
        ChatMessage::User {
            content: text.to_owned(),
        }
    }

    #[tokio::test]
    async fn echoes_the_input_word_by_word_and_counts_a_token_per_word() {
        let system = ChatMessage::System {
            content: "be brief".to_owned(),
        };
        let (deltas, outcome) = run(vec![system, user("  hello brave\nnew world ")]).await;
        assert_eq!(deltas, ["  hello ", "brave\n", "new ", "world "]);
        assert_eq!(deltas.concat(), "  hello brave\nnew world ");
        assert_eq!(outcome.content, "  hello brave\nnew world ");
        assert_eq!(outcome.finish_reason, "stop");
        assert_eq!(
            outcome.usage,
            Usage {
                prompt_tokens: 6,
                completion_tokens: 4
            }
        );
    }

    #[tokio::test]
    async fn a_tool_command_calls_the_tool_and_then_answers_with_its_output() {
        let (deltas, outcome) = run(vec![user(r#"/tool weather {"city": "Oslo"}"#)]).await;
        assert!(deltas.is_empty());
        assert_eq!(outcome.finish_reason, "tool_calls");
        assert_eq!(outcome.tool_calls.len(), 1);
        let call = outcome.tool_calls[0].clone();
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("weather", r#"{"city": "Oslo"}"#)
        );

        let (deltas, outcome) = run(vec![
            user(r#"/tool weather {"city": "Oslo"}"#),
            ChatMessage::Assistant {
                content: String::new(),
                tool_calls: vec![call.clone()],
            },
            ChatMessage::Tool {
                call_id: call.call_id,
                content: "rain, 4 °C".to_owned(),
            },
        ])
        .await;
        assert_eq!(deltas.concat(), "rain, 4 °C");
        assert_eq!(outcome.content, "rain, 4 °C");
        assert!(outcome.tool_calls.is_empty());
    }

    #[tokio::test]
    async fn a_tool_command_without_arguments_sends_an_empty_object() {
        let (_, outcome) = run(vec![user("/tool now")]).await;
        assert_eq!(outcome.tool_calls[0].arguments, "{}");
    }
}
