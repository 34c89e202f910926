//! What [`FakeLlm`](super::FakeLlm) answers to one request: a [`Reply`], built from a few
//! constructors and modifiers.

use std::time::Duration;

/// One scripted answer. Start from [`Reply::text`], [`Reply::words`], [`Reply::tool_call`],
/// [`Reply::error`], [`Reply::stall`] or [`Reply::broken`], then adjust:
///
/// ```
/// # use std::time::Duration;
/// # use testkit::Reply;
/// // "Hello, world" in two chunks, one every 20 ms, usage reported as 12 + 2 tokens.
/// let slow = Reply::text(["Hello, ", "world"]).every(Duration::from_millis(20)).with_usage(12, 2);
/// // Two tool calls in one turn, the arguments of each split over chunks.
/// let calls = Reply::tool_call("call_1", "weather", [r#"{"city":"#, r#""Oslo"}"#])
///     .with_tool_call("call_2", "time", ["{}"]);
/// // Rate limited, try again in 1 s.
/// let limited = Reply::error(429).with_retry_after("1");
/// ```
///
/// A streamed reply sends, as OpenAI does: a first chunk with the role, the text chunks,
/// the pieces of each tool call (id and name in the first, the arguments in those given),
/// a chunk with the finish reason (`tool_calls` when there are calls, else `stop`), a usage
/// chunk without choices, and `data: [DONE]`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub(super) kind: Kind,
    /// Wait before answering at all (before the headers).
    pub(super) after: Duration,
    /// Wait before each chunk after the role chunk.
    pub(super) every: Duration,
}

#[derive(Clone, Debug)]
pub(super) enum Kind {
    Stream(Script),
    Error {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
}

/// A streamed answer's content and how it ends.
#[derive(Clone, Debug, Default)]
pub(super) struct Script {
    pub(super) text: Vec<String>,
    pub(super) tool_calls: Vec<ScriptedCall>,
    pub(super) finish_reason: Option<String>,
    pub(super) usage: UsageReport,
    pub(super) ending: Ending,
}

#[derive(Clone, Debug)]
pub(super) struct ScriptedCall {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) arguments: Vec<String>,
}

/// What the usage chunk says.
#[derive(Clone, Copy, Debug, Default)]
pub(super) enum UsageReport {
    /// Prompt tokens: the words of the request's messages; completion tokens: the text and
    /// argument chunks sent.
    #[default]
    Counted,
    Given {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    Absent,
}

/// How a streamed reply ends once its chunks are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Ending {
    /// Finish reason, usage, `[DONE]`, end of the body.
    #[default]
    Complete,
    /// Nothing more, and the response stays open.
    Stall,
    /// The connection is broken off (the body fails, which resets it).
    Break,
}

impl Reply {
    fn stream(script: Script) -> Self {
        Self {
            kind: Kind::Stream(script),
            after: Duration::ZERO,
            every: Duration::ZERO,
        }
    }

    /// Text, one chunk per item, as given.
    pub fn text<I, S>(chunks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::stream(Script {
            text: chunks.into_iter().map(Into::into).collect(),
            ..Script::default()
        })
    }

    /// `text` in chunks of one word each (the whitespace after a word stays with it, so the
    /// chunks join back to `text`).
    pub fn words(text: &str) -> Self {
        Self::text(word_chunks(text))
    }

    /// One tool call: id and name in its first piece, then `arguments` one piece per item.
    pub fn tool_call<I, S>(id: &str, name: &str, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::stream(Script::default()).with_tool_call(id, name, arguments)
    }

    /// The provider refuses with `status` and an OpenAI-style JSON error body
    /// (`{"error": {"message": "fake error <status>", …}}`; change it with [`Self::with_body`]).
    pub fn error(status: u16) -> Self {
        let body = serde_json::json!({
            "error": {"message": format!("fake error {status}"), "type": "fake_error", "code": null}
        });
        Self {
            kind: Kind::Error {
                status,
                retry_after: None,
                body: body.to_string(),
            },
            after: Duration::ZERO,
            every: Duration::ZERO,
        }
    }

    /// Headers sent, then nothing, ever (not even the role chunk): a provider that hangs
    /// before its first chunk.
    pub fn stall() -> Self {
        Self::stream(Script {
            ending: Ending::Stall,
            ..Script::default()
        })
    }

    /// Headers sent, then the connection broken before any chunk (not even the role chunk).
    pub fn broken() -> Self {
        Self::stream(Script {
            ending: Ending::Break,
            ..Script::default()
        })
    }

    /// Adds a tool call after those already in the reply (it gets the next `index`).
    pub fn with_tool_call<I, S>(mut self, id: &str, name: &str, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Kind::Stream(script) = &mut self.kind {
            script.tool_calls.push(ScriptedCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments: arguments.into_iter().map(Into::into).collect(),
            });
        }
        self
    }

    /// Waits `delay` before each chunk after the first (the role chunk), e.g. 20 ms for a
    /// model streaming 50 chunks a second.
    pub fn every(mut self, delay: Duration) -> Self {
        self.every = delay;
        self
    }

    /// Waits `delay` before answering at all: no headers until then.
    pub fn after(mut self, delay: Duration) -> Self {
        self.after = delay;
        self
    }

    /// Reports this usage instead of the counted one.
    pub fn with_usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        if let Kind::Stream(script) = &mut self.kind {
            script.usage = UsageReport::Given {
                prompt_tokens,
                completion_tokens,
            };
        }
        self
    }

    /// Sends no usage chunk, as some compatible servers do.
    pub fn without_usage(mut self) -> Self {
        if let Kind::Stream(script) = &mut self.kind {
            script.usage = UsageReport::Absent;
        }
        self
    }

    /// Ends with this finish reason instead of `stop` / `tool_calls` (e.g. `length`).
    pub fn with_finish_reason(mut self, reason: &str) -> Self {
        if let Kind::Stream(script) = &mut self.kind {
            script.finish_reason = Some(reason.to_owned());
        }
        self
    }

    /// After its chunks, sends nothing more and keeps the response open (a stall mid-answer).
    pub fn then_stall(mut self) -> Self {
        if let Kind::Stream(script) = &mut self.kind {
            script.ending = Ending::Stall;
        }
        self
    }

    /// After its chunks, breaks the connection off (a provider lost mid-answer).
    pub fn then_break(mut self) -> Self {
        if let Kind::Stream(script) = &mut self.kind {
            script.ending = Ending::Break;
        }
        self
    }

    /// For an error reply: sends `retry_after` as the `Retry-After` header (seconds or an
    /// HTTP date, as given).
    pub fn with_retry_after(mut self, retry_after: &str) -> Self {
        if let Kind::Error {
            retry_after: header, ..
        } = &mut self.kind
        {
            *header = Some(retry_after.to_owned());
        }
        self
    }

    /// For an error reply: this body instead of the default JSON (sent as JSON when it
    /// parses as JSON, else as plain text).
    pub fn with_body(mut self, body: &str) -> Self {
        if let Kind::Error { body: current, .. } = &mut self.kind {
            *current = body.to_owned();
        }
        self
    }
}

/// `text` in one-word pieces, each keeping the whitespace that follows it.
pub(super) fn word_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for character in text.chars() {
        if in_space && !character.is_whitespace() {
            chunks.push(std::mem::take(&mut current));
            in_space = false;
        }
        in_space |= character.is_whitespace() && !current.trim().is_empty();
        current.push(character);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_chunks_join_back_to_the_text() {
        assert_eq!(
            word_chunks("hello brave  new\nworld "),
            ["hello ", "brave  ", "new\n", "world "]
        );
        assert_eq!(word_chunks("  lead"), ["  lead"]);
        assert!(word_chunks("").is_empty());
    }
}
