//! The agent runtime: what turns a queued run into LLM calls and tool calls, each recorded as
//! an event before the next begins.
//!
//! - [`llm`]: chat models behind one streaming interface (the built-in `echo`, and any
//!   OpenAI-compatible endpoint).
//! - [`tools`]: calling an organization's HTTP tools, signed, bounded and fenced.

pub mod llm;
pub mod tools;
