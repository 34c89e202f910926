//! One model call: the request from the conversation so far, the answer streamed and its text
//! recorded in batches, then the answer and its tool calls recorded whole.

use std::pin::Pin;
use std::time::Instant;

use commands::runs::{RunTranscript, Speaker, TranscriptMessage};
use domain::agent::{Approval, ApprovalMode};
use domain::run::{LlmCallRecord, MAX_UNRECORDED_IDS, ModelToolCall, Run, RunCommand, RunError, RunEvent};
use eventstore::{CommandError, Committed};
use futures::StreamExt;
use streams::StreamFrame;

use super::credits::Hold;
use super::run_loop::{Execution, ExecutionError, Outcome};

/// The append of a batch of text chunks, made while the model's stream is read on.
type Recording<'a> =
    Pin<Box<dyn Future<Output = Result<Committed<Run>, CommandError<RunError>>> + Send + 'a>>;
use crate::llm::{ChatEvent, ChatMessage, ChatOutcome, ChatRequest, LlmError, ToolCall};

impl Execution<'_> {
    /// Calls the model for the run's next step. `Some` when the execution must stop.
    pub(super) async fn call_model(&mut self) -> Result<Option<Outcome>, ExecutionError> {
        let executor = self.executor.id();
        let transcript = self.transcript().await?;
        let request = self.request(&transcript);
        let model_name = self.agent.model.clone();
        let already_started = self.model_started_here.take().is_some();
        // The last call's charge lands before this call's hold is asked for.
        self.settled().await;
        let step = self.run.open_model_call().unwrap_or(self.run.steps() + 1);
        let (hold, mut first_answer) = match self.early_hold.take() {
            // Asked for while the call's start was recorded (with the run's start, or the tool
            // result before it), built from what this execution expected the request to be. If
            // the run changed meanwhile and the request grew, the ledger's answer is short of
            // the hold this request needs, and `take_hold` tops it up.
            Some((early_step, early, answer)) if early_step == step => {
                let now = self.hold_for(step, &request);
                if now.as_ref().map(Hold::worst_case) == Some(early.worst_case()) {
                    (Some(early), Some(answer))
                } else {
                    (now, Some(answer))
                }
            }
            _ => (self.hold_for(step, &request), None),
        };
        self.may_hold_credits |= hold.is_some();
        if !already_started {
            // The hold goes to the ledger while the start is recorded: both before the request.
            let reserve = async {
                match &hold {
                    Some(hold) => Some(hold.reserve().await),
                    None => None,
                }
            };
            let start = RunCommand::StartLlmCall {
                executor,
                model: model_name.clone(),
            };
            let (recorded, reserved) = tokio::join!(self.record(start), reserve);
            if !recorded? {
                return Ok(Some(Outcome::LetGo));
            }
            first_answer = reserved.transpose()?;
        }
        if let Some(hold) = hold
            && let Some(stop) = self.take_hold(hold, first_answer).await?
        {
            return Ok(Some(stop));
        }
        let started = Instant::now();
        let mut stream = match self.model.stream(request).await {
            Ok(stream) => stream,
            Err(error) => return self.model_failed(&error).await,
        };
        let settings = self.executor.settings().clone();
        let batch = settings.delta_batch.clamp(1, MAX_UNRECORDED_IDS as usize / 2);
        let cancel = self.cancel.clone();
        // Chunks sent live and not yet handed to the store.
        let mut pending: Vec<String> = Vec::new();
        // The batch being recorded while the stream goes on: how many chunks, and its append.
        // The live path never waits for the store: a slow append delayed every chunk behind it.
        let mut recording: Option<(usize, Recording<'_>)> = None;
        let mut last_flush = Instant::now();
        loop {
            let next = tokio::select! {
                // Dropping the stream closes the provider's HTTP call. A batch being recorded is
                // let finish first, so what this execution knows of the run stays true.
                () = cancel.cancelled() => {
                    drop(stream);
                    if let Some((_, append)) = recording.take() {
                        self.recorded(append.await)?;
                    }
                    return Ok(Some(Outcome::LetGo));
                }
                outcome = recorded(&mut recording), if recording.is_some() => {
                    recording = None;
                    if !self.recorded(outcome)? {
                        return Ok(Some(Outcome::LetGo));
                    }
                    continue;
                }
                next = stream.next() => next,
            };
            if !matches!(next, Some(Ok(ChatEvent::TextDelta(_))))
                && let Some((_, append)) = recording.take()
                && !self.recorded(append.await)?
            {
                return Ok(Some(Outcome::LetGo));
            }
            match next {
                Some(Ok(ChatEvent::TextDelta(text))) => {
                    let in_flight = recording.as_ref().map_or(0, |(chunks, _)| *chunks);
                    self.send_live(in_flight + pending.len(), &text);
                    pending.push(text);
                    let due = pending.len() >= batch || last_flush.elapsed() >= settings.delta_window;
                    if !due {
                        continue;
                    }
                    // At most two batches are unrecorded: the one being recorded and this one.
                    if pending.len() >= batch
                        && let Some((_, append)) = recording.take()
                        && !self.recorded(append.await)?
                    {
                        return Ok(Some(Outcome::LetGo));
                    }
                    if recording.is_none() {
                        let chunks = std::mem::take(&mut pending);
                        let count = chunks.len();
                        let command = RunCommand::RecordDeltas {
                            executor: self.executor.id(),
                            chunks,
                        };
                        recording = Some((count, Box::pin(self.recording(command))));
                        last_flush = Instant::now();
                    }
                }
                Some(Ok(ChatEvent::Done(outcome))) => {
                    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    // The text not yet recorded goes in the same append as the answer.
                    return self
                        .model_answered(model_name, outcome, latency_ms, pending)
                        .await;
                }
                Some(Err(error)) => return self.model_failed(&error).await,
                None => {
                    let error = LlmError::Malformed("the answer ended without finishing".to_owned());
                    return self.model_failed(&error).await;
                }
            }
        }
    }

    /// The conversation so far: the earlier runs' messages and this run's, each read once (the
    /// two reads at once: a billed run makes them before it is taken, in series with its start).
    pub(super) async fn transcript(&mut self) -> Result<Vec<TranscriptMessage>, ExecutionError> {
        let service = self.executor.service();
        let (conversation_id, run_id) = (self.run.conversation_id(), self.run_id);
        let history = async {
            match self.history {
                Some(_) => Ok(None),
                None => service.transcript_before(conversation_id, run_id).await.map(Some),
            }
        };
        let run_messages = async {
            match self.run_transcript {
                Some(_) => Ok(None),
                None => service.transcript_of_run(run_id).await.map(Some),
            }
        };
        let (history, run_messages) = tokio::try_join!(history, run_messages)?;
        if let Some(history) = history {
            self.history = Some(history);
        }
        if let Some(messages) = run_messages {
            self.run_transcript = Some(RunTranscript::new(run_id, messages));
        }
        Ok(self.transcript_with(&[]))
    }

    /// The conversation as it stands once `events` are recorded (what this execution read and
    /// recorded so far, then `events`).
    pub(super) fn transcript_with(&self, events: &[RunEvent]) -> Vec<TranscriptMessage> {
        let mut transcript = self.history.clone().unwrap_or_default();
        if let Some(run) = &self.run_transcript {
            if events.is_empty() {
                transcript.extend_from_slice(run.messages());
            } else {
                let mut upcoming = run.clone();
                events.iter().for_each(|event| upcoming.apply(event));
                transcript.extend_from_slice(upcoming.messages());
            }
        }
        transcript
    }

    /// Sends a chunk to the run's readers now, under the id it will be recorded with: the
    /// next free id after the `unrecorded` chunks before it (only this executor records the
    /// run's steps, and a cancel or takeover meanwhile skips every id it may hand out).
    fn send_live(&self, unrecorded: usize, text: &str) {
        let (Some(live), Some(org_id)) = (self.executor.live(), self.run.org_id()) else {
            return;
        };
        let id = self.run.next_id() + unrecorded as u64;
        let frame = StreamFrame::delta(self.run_id, id, self.run.steps(), text);
        live.publish(org_id, self.run_id, frame);
    }

    async fn model_answered(
        &mut self,
        model: String,
        outcome: ChatOutcome,
        latency_ms: u64,
        last_chunks: Vec<String>,
    ) -> Result<Option<Outcome>, ExecutionError> {
        let credits = self.executor.settings().prices.credits(
            &model,
            outcome.usage.prompt_tokens,
            outcome.usage.completion_tokens,
        );
        let step = self.run.open_model_call();
        let tokens_counted = !outcome.usage_reported;
        let start_first_call = self.may_start_at_once(outcome.tool_calls.first());
        let tool_calls: Vec<ModelToolCall> = outcome
            .tool_calls
            .into_iter()
            .map(|call| ModelToolCall {
                approval_required: approval_required(&self.agent.approval, &call.name),
                approval_expires_at: self
                    .agent
                    .approval_timeout_seconds
                    .map(|seconds| chrono::Utc::now() + chrono::TimeDelta::seconds(i64::from(seconds))),
                model_call_id: call.call_id,
                name: call.name,
                arguments: call.arguments,
            })
            .collect();
        let record = LlmCallRecord {
            model,
            prompt_tokens: outcome.usage.prompt_tokens,
            completion_tokens: outcome.usage.completion_tokens,
            usage_reported: outcome.usage_reported,
            credits,
            latency_ms,
            finish_reason: outcome.finish_reason,
            retries: outcome.retries,
        };
        let billed_step = step.filter(|_| self.executor.service().billing().is_some());
        let ends_run = tool_calls.is_empty();
        let answer = RunCommand::CompleteLlmCall {
            executor: self.executor.id(),
            record,
            content: outcome.content,
            tool_calls,
            last_chunks,
            start_first_call,
            // A billed run's end goes with its last charge (`record_charged_answer`).
            then_complete: billed_step.is_none(),
        };
        let recorded = match billed_step {
            Some(step) => {
                self.record_charged_answer(answer, step, credits, tokens_counted, ends_run)
                    .await?
            }
            None => self.record(answer).await?,
        };
        self.call_started_here = self
            .run
            .calls()
            .first()
            .filter(|call| start_first_call && call.attempts > 0 && !call.finished)
            .map(|call| call.call_id);
        Ok((!recorded).then_some(Outcome::LetGo))
    }

    async fn model_failed(&mut self, error: &LlmError) -> Result<Option<Outcome>, ExecutionError> {
        let code = match error.cause() {
            LlmError::Provider { .. } => "llm_provider_error",
            LlmError::Timeout { .. } => "llm_timeout",
            LlmError::Connection(_) => "llm_unreachable",
            LlmError::Malformed(_) => "llm_malformed_answer",
            LlmError::UnknownModel(_) => "unknown_model",
            LlmError::Retried { .. } => "llm_provider_error",
        };
        let retries = error.retries();
        let recorded = self
            .record(RunCommand::FailLlmCall {
                executor: self.executor.id(),
                model: self.agent.model.clone(),
                code: code.to_owned(),
                detail: error.to_string(),
                retries,
            })
            .await?;
        Ok((!recorded).then_some(Outcome::LetGo))
    }

    /// Whether `call` may be recorded as started together with the answer: no approval needed,
    /// and its tool and arguments check out (otherwise its failure is recorded instead).
    fn may_start_at_once(&self, call: Option<&ToolCall>) -> bool {
        let Some(call) = call else { return false };
        if approval_required(&self.agent.approval, &call.name) {
            return false;
        }
        self.tools
            .iter()
            .find(|tool| tool.spec.name == call.name)
            .is_some_and(|tool| {
                self.executor
                    .toolbox()
                    .check_arguments(tool, &call.arguments)
                    .is_ok()
            })
    }

    pub(super) fn request(&self, transcript: &[TranscriptMessage]) -> ChatRequest {
        let mut messages = Vec::with_capacity(transcript.len() + 1);
        if !self.agent.system_prompt.is_empty() {
            messages.push(ChatMessage::System {
                content: self.agent.system_prompt.clone(),
            });
        }
        messages.extend(transcript.iter().map(chat_message));
        ChatRequest {
            model: self.agent.model.clone(),
            messages,
            tools: self.tools.iter().map(|tool| tool.spec.clone()).collect(),
            temperature: self.agent.temperature,
            // Billed, every call's worst case must be bounded before it is made.
            max_output_tokens: self.agent.max_output_tokens.or_else(|| {
                self.executor
                    .service()
                    .billing()
                    .map(|_| self.executor.settings().default_max_output_tokens)
            }),
        }
    }
}

fn chat_message(message: &TranscriptMessage) -> ChatMessage {
    match message.role {
        Speaker::User => ChatMessage::User {
            content: message.content.clone(),
        },
        Speaker::Assistant => ChatMessage::Assistant {
            content: message.content.clone(),
            tool_calls: message
                .tool_calls
                .iter()
                .map(|call| ToolCall {
                    call_id: call.model_call_id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                })
                .collect(),
        },
        Speaker::Tool => ChatMessage::Tool {
            call_id: message
                .call
                .as_ref()
                .map(|call| call.model_call_id.clone())
                .unwrap_or_default(),
            content: message.content.clone(),
        },
    }
}

/// Whether the agent's policy makes a call of `tool` wait for a person.
fn approval_required(policy: &Approval, tool: &str) -> bool {
    match policy {
        Approval::All(mode) => *mode == ApprovalMode::Always,
        Approval::PerTool(modes) => modes.get(tool) == Some(&ApprovalMode::Always),
    }
}

/// What the batch being recorded came to; never ready when there is none.
async fn recorded(
    recording: &mut Option<(usize, Recording<'_>)>,
) -> Result<Committed<Run>, CommandError<RunError>> {
    match recording {
        Some((_, append)) => append.await,
        None => std::future::pending().await,
    }
}
