//! A [`ChatRequest`] as the chat-completions request body.
//!
//! The answer's length limit goes out as `max_completion_tokens`, the field OpenAI documents
//! today: its reasoning models (o-series, gpt-5) refuse the older `max_tokens` with a 400,
//! while vLLM, LiteLLM, Gemini's and Anthropic's compatibility endpoints accept
//! `max_completion_tokens`, and servers that predate it ignore an unknown field rather than
//! fail the call (the limit is then not applied: a cost risk, not an outage).

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestToolMessage, ChatCompletionRequestToolMessageContent,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions,
    ChatCompletionTool, ChatCompletionTools, CreateChatCompletionRequest, FunctionCall, FunctionObject,
};

use crate::llm::{ChatMessage, ChatRequest, ToolCall, ToolSpec};

/// The streaming request body for `request`, usage included in the stream.
pub(super) fn chat_completion_request(request: &ChatRequest) -> CreateChatCompletionRequest {
    CreateChatCompletionRequest {
        model: request.model.clone(),
        messages: request.messages.iter().map(message).collect(),
        tools: (!request.tools.is_empty()).then(|| request.tools.iter().map(tool).collect()),
        temperature: request.temperature.map(|temperature| temperature as f32),
        max_completion_tokens: request.max_output_tokens,
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        }),
        ..Default::default()
    }
}

fn message(message: &ChatMessage) -> ChatCompletionRequestMessage {
    match message {
        ChatMessage::System { content } => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(content.clone()),
                name: None,
            })
        }
        ChatMessage::User { content } => {
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(content.clone()),
                name: None,
            })
        }
        ChatMessage::Assistant { content, tool_calls } => {
            // Content may be null only beside tool calls; a text-less, call-less answer
            // keeps its empty string.
            let content = (!content.is_empty() || tool_calls.is_empty())
                .then(|| ChatCompletionRequestAssistantMessageContent::Text(content.clone()));
            let tool_calls =
                (!tool_calls.is_empty()).then(|| tool_calls.iter().map(assistant_tool_call).collect());
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content,
                tool_calls,
                ..Default::default()
            })
        }
        ChatMessage::Tool { call_id, content } => {
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
                tool_call_id: call_id.clone(),
            })
        }
    }
}

fn assistant_tool_call(call: &ToolCall) -> ChatCompletionMessageToolCalls {
    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
        id: call.call_id.clone(),
        function: FunctionCall {
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        },
    })
}

fn tool(spec: &ToolSpec) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: spec.name.clone(),
            description: Some(spec.description.clone()),
            parameters: Some(spec.parameters.clone()),
            strict: None,
        },
    })
}
