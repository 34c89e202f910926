//! Token counts when the provider reports none.
//!
//! Rule: about four characters per token, rounded up (OpenAI's rule of thumb for English;
//! [`domain::credit_account::CHARS_PER_TOKEN`], which the charge of a call cancelled while it
//! streamed counts by too), counted over what the model reads and writes. The request counts every message's text,
//! the names and arguments of the tool calls in it, and each offered tool's name,
//! description and JSON Schema; the answer counts its text and its tool calls' names and
//! arguments. Characters, not bytes, so other scripts are not counted three times over. The
//! estimate is marked (`usage_reported = false`) so that billing can tell it apart.

use domain::credit_account::counted_tokens;

use crate::llm::{ChatMessage, ChatRequest, ToolCall, Usage};

/// The characters the model reads for `request`.
pub(super) fn request_chars(request: &ChatRequest) -> usize {
    let messages: usize = request.messages.iter().map(message_chars).sum();
    let tools: usize = request
        .tools
        .iter()
        .map(|tool| chars(&tool.name) + chars(&tool.description) + chars(&tool.parameters.to_string()))
        .sum();
    messages + tools
}

/// The estimated usage of a call that read `request_chars` and answered `content` and
/// `tool_calls`.
pub(super) fn estimate(request_chars: usize, content: &str, tool_calls: &[ToolCall]) -> Usage {
    let answer_chars = chars(content) + tool_calls.iter().map(call_chars).sum::<usize>();
    Usage {
        prompt_tokens: tokens(request_chars),
        completion_tokens: tokens(answer_chars),
    }
}

fn tokens(chars: usize) -> u64 {
    counted_tokens(chars as u64)
}

impl ChatRequest {
    /// The prompt's tokens as Agentry counts them (the rule above): what a call cancelled
    /// while it streamed is charged for its prompt, the provider's count never arriving.
    pub fn counted_prompt_tokens(&self) -> u64 {
        tokens(request_chars(self))
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn call_chars(call: &ToolCall) -> usize {
    chars(&call.name) + chars(&call.arguments)
}

fn message_chars(message: &ChatMessage) -> usize {
    match message {
        ChatMessage::System { content }
        | ChatMessage::User { content }
        | ChatMessage::Tool { content, .. } => chars(content),
        ChatMessage::Assistant { content, tool_calls } => {
            chars(content) + tool_calls.iter().map(call_chars).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::ToolSpec;

    #[test]
    fn four_characters_make_a_token_rounded_up() {
        let request = ChatRequest {
            model: "m".to_owned(),
            messages: vec![
                ChatMessage::System {
                    content: "abcd".to_owned(),
                },
                ChatMessage::User {
                    content: "éé".to_owned(),
                },
            ],
            tools: vec![ToolSpec {
                name: "t".to_owned(),
                description: String::new(),
                parameters: json!({}),
            }],
            temperature: None,
            max_output_tokens: None,
        };
        // 4 + 2 characters of messages, 1 + 0 + 2 of the tool: 9 characters.
        assert_eq!(request_chars(&request), 9);
        let call = ToolCall {
            call_id: "c".to_owned(),
            name: "ab".to_owned(),
            arguments: "{}".to_owned(),
        };
        assert_eq!(
            estimate(9, "hello", &[call]),
            Usage {
                prompt_tokens: 3,
                completion_tokens: 3
            }
        );
    }
}
