//! An upper bound of a request's prompt tokens, without a tokenizer.
//!
//! The ledger reserves a model call's worst case before the call (so concurrent runs cannot
//! spend credits twice), and the provider's count arrives only after it. Byte-level BPE
//! tokenizers (OpenAI's, Llama 3's, and most served models') never make a token of less than one
//! byte, so a request's bytes bound its tokens; the chat template adds a few tokens per message
//! and the tool definitions' wrapping a few per tool, which the allowances below cover. The bound
//! is generous (English text is about four bytes per token): what is reserved beyond the real
//! cost is released when the call is settled.

use super::{ChatMessage, ChatRequest};

/// Tokens a chat template adds around one message (role markers, separators).
const PER_MESSAGE: u64 = 8;
/// Tokens the provider's wrapping of one tool definition adds.
const PER_TOOL: u64 = 32;
/// Tokens that start the assistant's answer.
const PER_REQUEST: u64 = 16;

impl ChatRequest {
    /// At least as many tokens as the provider will count for this request's prompt (see the
    /// module's note for the tokenizers this holds for).
    pub fn prompt_token_bound(&self) -> u64 {
        let messages: u64 = self.messages.iter().map(message_bytes).sum();
        let tools: u64 = self
            .tools
            .iter()
            .map(|tool| {
                bytes(&tool.name) + bytes(&tool.description) + bytes(&tool.parameters.to_string()) + PER_TOOL
            })
            .sum();
        PER_REQUEST + messages + tools
    }
}

fn message_bytes(message: &ChatMessage) -> u64 {
    PER_MESSAGE
        + match message {
            ChatMessage::System { content } | ChatMessage::User { content } => bytes(content),
            ChatMessage::Assistant { content, tool_calls } => {
                bytes(content)
                    + tool_calls
                        .iter()
                        .map(|call| {
                            bytes(&call.call_id) + bytes(&call.name) + bytes(&call.arguments) + PER_MESSAGE
                        })
                        .sum::<u64>()
            }
            ChatMessage::Tool { call_id, content } => bytes(call_id) + bytes(content),
        }
}

fn bytes(text: &str) -> u64 {
    text.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolSpec;

    #[test]
    fn the_bound_counts_every_byte_sent_plus_the_templates_allowance() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![
                ChatMessage::System {
                    content: "be brief".into(),
                },
                ChatMessage::User {
                    content: "héllo".into(),
                },
            ],
            tools: vec![ToolSpec {
                name: "t".into(),
                description: "d".into(),
                parameters: serde_json::json!({}),
            }],
            temperature: None,
            max_output_tokens: None,
        };
        // 8 + 6 bytes of text ("é" is two), 2 messages, one tool of 1 + 1 + 2 bytes.
        assert_eq!(request.prompt_token_bound(), 16 + (8 + 8) + (6 + 8) + (4 + 32));
    }
}
