//! The agent runtime: what turns a queued run into LLM calls and tool calls, each recorded as
//! an event before the next begins.
//!
//! - [`llm`]: chat models behind one streaming interface (the built-in `echo`, and any
//!   OpenAI-compatible endpoint).
//! - [`executor`]: drives a run from its record to its end, and the in-process queue of runs.
//! - [`tools`]: calling an organization's HTTP tools, signed, bounded and fenced.

pub mod executor;
pub mod llm;
pub mod tools;
