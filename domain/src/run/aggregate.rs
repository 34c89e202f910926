//! The run aggregate: where a run stands, who executes it, and what may happen next.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::call::call_id;
use super::{
    AbandonedCall, ApprovalState, Call, LlmCallRecord, MAX_UNRECORDED_IDS, ModelToolCall, RunCommand,
    RunError, RunEvent, RunStatus, ToolFailure, ToolResult,
};
use crate::credit_account::{CallPrice, counted_tokens};
use crate::sink::write_all;

type Decision = Result<Vec<RunEvent>, RunError>;

/// Longest denial reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// What the executor of a run should do next, decided from the recorded events alone, so a
/// resumed run continues exactly where the last record left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextAction {
    /// Take the run (`Start`) first.
    Start,
    /// Call the model for step `step`.
    CallModel {
        /// The step it will be.
        step: u32,
    },
    /// Call this tool (again, with the same key, if `attempts > 0`).
    CallTool(Call),
    /// The model answered without tool calls: complete the run.
    Complete,
    /// Calls wait for approval: let go of the run.
    AwaitApproval,
    /// The run waits for credits: go on only once they cover [`Run::credits_needed`].
    AwaitCredits,
    /// Nothing: the run has ended.
    Finished,
}

/// A run of one organization (the aggregate id is the run id). The state is small: the
/// current step's calls and totals, never the transcript.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct Run {
    run_id: Uuid,
    org_id: Option<Uuid>,
    conversation_id: Uuid,
    agent_id: Uuid,
    agent_version: u32,
    status: RunStatus,
    executor: Option<Uuid>,
    ever_started: bool,
    next_id: u64,
    /// Model calls begun.
    steps: u32,
    /// The step of a model call begun and not finished.
    model_call_open: Option<u32>,
    /// The latest answer had no tool calls.
    answered: bool,
    calls: Vec<Call>,
    /// Ids of the calls of earlier steps (all finished), so a late decision on one is told it
    /// is not pending rather than that it does not exist.
    earlier_calls: Vec<Uuid>,
    /// The latest answer's text (the run's output once it completes).
    last_content: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    credits: u64,
    /// While it awaits credits: what its next model call needs reserved.
    #[serde(default)]
    credits_needed: Option<u64>,
    /// Characters of text recorded of the open model call's answer: what it is charged for if
    /// the run is cancelled before the call completes.
    #[serde(default)]
    open_call_chars: u64,
}

impl Run {
    /// Whether `Queue` has happened.
    pub fn exists(&self) -> bool {
        self.org_id.is_some()
    }

    /// The owning organization.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// The conversation.
    pub fn conversation_id(&self) -> Uuid {
        self.conversation_id
    }

    /// The agent and its version.
    pub fn agent(&self) -> (Uuid, u32) {
        (self.agent_id, self.agent_version)
    }

    /// Where it stands.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// The step of a model call begun and not finished, if any.
    pub fn open_model_call(&self) -> Option<u32> {
        self.model_call_open
    }

    /// Model calls begun so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Tokens and credits so far: (prompt, completion, credits).
    pub fn usage(&self) -> (u64, u64, u64) {
        (self.prompt_tokens, self.completion_tokens, self.credits)
    }

    /// While the run awaits credits, the credits its next model call needs reserved.
    pub fn credits_needed(&self) -> Option<u64> {
        self.credits_needed
    }

    /// The current step's tool calls.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// The executor holding the run, if any.
    pub fn executor(&self) -> Option<Uuid> {
        self.executor
    }

    /// The stream id the next recorded event takes: an executor streaming an answer hands out
    /// ids from here live, one per chunk, before it records them.
    pub fn next_id(&self) -> u64 {
        self.id()
    }

    /// The last stream id recorded.
    pub fn last_id(&self) -> u64 {
        self.next_id.saturating_sub(1)
    }

    /// What the executor `executor` should do next.
    pub fn next_action(&self, executor: Uuid) -> NextAction {
        if !self.exists() || self.status.is_terminal() {
            return NextAction::Finished;
        }
        if self.status == RunStatus::AwaitingApproval {
            return NextAction::AwaitApproval;
        }
        if self.status == RunStatus::AwaitingCredits {
            return NextAction::AwaitCredits;
        }
        if self.executor != Some(executor) {
            return NextAction::Start;
        }
        if let Some(step) = self.model_call_open {
            return NextAction::CallModel { step };
        }
        if let Some(call) = self.calls.iter().find(|call| call.is_runnable()) {
            return NextAction::CallTool(call.clone());
        }
        if self.answered {
            return NextAction::Complete;
        }
        NextAction::CallModel { step: self.steps + 1 }
    }

    fn id(&self) -> u64 {
        self.next_id.max(1)
    }

    fn check_live(&self) -> Result<(), RunError> {
        if !self.exists() {
            return Err(RunError::NotFound);
        }
        if self.status.is_terminal() {
            return Err(RunError::Finished { status: self.status });
        }
        Ok(())
    }

    fn check_executor(&self, executor: Uuid) -> Result<(), RunError> {
        self.check_live()?;
        if self.executor != Some(executor) || self.status != RunStatus::Running {
            return Err(RunError::NotExecutor);
        }
        Ok(())
    }

    fn queue(&self, command: RunCommand) -> Decision {
        if self.exists() {
            return Err(RunError::AlreadyExists);
        }
        let RunCommand::Queue {
            run_id,
            org_id,
            conversation_id,
            agent_id,
            agent_version,
            input,
        } = command
        else {
            return Err(RunError::NotFound);
        };
        Ok(vec![RunEvent::Queued {
            id: 1,
            run_id,
            org_id,
            conversation_id,
            agent_id,
            agent_version,
            input,
        }])
    }

    fn start(&self, executor: Uuid, takeover: bool) -> Decision {
        self.check_live()?;
        if self.status == RunStatus::AwaitingApproval {
            return Err(RunError::OutOfStep("the run awaits approval"));
        }
        if self.executor.is_some_and(|holder| holder != executor) && !takeover {
            return Err(RunError::HeldByAnother);
        }
        if !self.ever_started {
            return Ok(vec![RunEvent::Started {
                id: self.id(),
                executor,
            }]);
        }
        // Another executor may have streamed part of an answer live before it stopped.
        let (discarded_step, skipped_ids) = match self.model_call_open {
            Some(step) if self.executor.is_some() => (Some(step), MAX_UNRECORDED_IDS),
            Some(step) => (Some(step), 0),
            None => (None, 0),
        };
        Ok(vec![RunEvent::Resumed {
            id: self.id() + skipped_ids,
            executor,
            discarded_step,
            skipped_ids,
        }])
    }

    fn start_llm_call(&self, executor: Uuid, model: String) -> Decision {
        self.check_executor(executor)?;
        if self.calls.iter().any(|call| !call.finished) {
            return Err(RunError::OutOfStep(
                "tool calls of the last answer are unfinished",
            ));
        }
        if self.answered {
            return Err(RunError::OutOfStep("the model has answered; complete the run"));
        }
        let step = self.model_call_open.unwrap_or(self.steps + 1);
        Ok(vec![RunEvent::LlmCallStarted {
            id: self.id(),
            step,
            model,
        }])
    }

    fn record_deltas(&self, executor: Uuid, chunks: Vec<String>) -> Decision {
        self.check_executor(executor)?;
        let Some(step) = self.model_call_open else {
            return Err(RunError::OutOfStep("no model call is open"));
        };
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![RunEvent::MessageDelta {
            first_id: self.id(),
            step,
            chunks,
        }])
    }

    fn complete_llm_call(
        &self,
        executor: Uuid,
        record: LlmCallRecord,
        content: String,
        tool_calls: Vec<ModelToolCall>,
        last_chunks: Vec<String>,
    ) -> Decision {
        self.check_executor(executor)?;
        let Some(step) = self.model_call_open else {
            return Err(RunError::OutOfStep("no model call is open"));
        };
        let mut events = Vec::new();
        let mut id = self.id();
        if !last_chunks.is_empty() {
            let taken = last_chunks.len() as u64;
            events.push(RunEvent::MessageDelta {
                first_id: id,
                step,
                chunks: last_chunks,
            });
            id += taken;
        }
        let mut next = || {
            id += 1;
            id - 1
        };
        events.extend([
            RunEvent::LlmCallCompleted {
                id: next(),
                step,
                model: record.model,
                prompt_tokens: record.prompt_tokens,
                completion_tokens: record.completion_tokens,
                usage_reported: record.usage_reported,
                credits: record.credits,
                latency_ms: record.latency_ms,
                finish_reason: record.finish_reason,
                retries: record.retries,
            },
            RunEvent::MessageCompleted {
                id: next(),
                step,
                content,
            },
        ]);
        for (index, requested) in tool_calls.into_iter().enumerate() {
            let approval = if requested.approval_required {
                ApprovalState::Pending
            } else {
                ApprovalState::NotRequired
            };
            events.push(RunEvent::ToolCallRequested {
                id: next(),
                step,
                call: Call {
                    call_id: call_id(self.run_id, step, index),
                    model_call_id: requested.model_call_id,
                    name: requested.name,
                    arguments: requested.arguments,
                    approval,
                    attempts: 0,
                    finished: false,
                    expires_at: requested
                        .approval_expires_at
                        .filter(|_| requested.approval_required),
                },
            });
        }
        Ok(events)
    }

    fn fail_llm_call(
        &self,
        executor: Uuid,
        model: String,
        code: String,
        detail: String,
        retries: u32,
    ) -> Decision {
        self.check_executor(executor)?;
        let step = self.model_call_open.unwrap_or(self.steps);
        Ok(vec![
            RunEvent::LlmCallFailed {
                id: self.id(),
                step,
                model,
                code: code.clone(),
                detail: detail.clone(),
                retries,
            },
            RunEvent::Failed {
                id: self.id() + 1,
                code,
                detail,
            },
        ])
    }

    fn call(&self, call_id: Uuid) -> Result<&Call, RunError> {
        self.calls
            .iter()
            .find(|call| call.call_id == call_id)
            .ok_or(RunError::CallNotFound { call_id })
    }

    fn start_tool_call(&self, executor: Uuid, call_id: Uuid) -> Decision {
        self.check_executor(executor)?;
        let call = self.call(call_id)?;
        if !call.is_runnable() {
            return Err(RunError::OutOfStep("the tool call may not run"));
        }
        Ok(vec![RunEvent::ToolCallStarted {
            id: self.id(),
            call_id,
            attempt: call.attempts + 1,
            idempotency_key: call_id.to_string(),
        }])
    }

    fn finish_tool_call(&self, executor: Uuid, call_id: Uuid, result: ToolResult) -> Decision {
        self.check_executor(executor)?;
        let call = self.call(call_id)?;
        if call.finished {
            return Ok(Vec::new());
        }
        let id = self.id();
        Ok(vec![match result {
            ToolResult::Output(output) => RunEvent::ToolCallCompleted { id, call_id, output },
            ToolResult::Failed { code, detail } => RunEvent::ToolCallFailed {
                id,
                call_id,
                failure: ToolFailure { code, detail },
            },
        }])
    }

    fn complete(&self, executor: Uuid) -> Decision {
        self.check_executor(executor)?;
        if !self.answered {
            return Err(RunError::OutOfStep("the model has not answered"));
        }
        Ok(vec![RunEvent::Completed {
            id: self.id(),
            output: self.last_content.clone(),
        }])
    }

    fn fail(&self, executor: Uuid, code: String, detail: String) -> Decision {
        self.check_executor(executor)?;
        Ok(vec![RunEvent::Failed {
            id: self.id(),
            code,
            detail,
        }])
    }

    /// The call `call_id` when it awaits a decision. A call decided before (or of an earlier
    /// step) is "not pending" even after the run ended; a pending call of an ended run is
    /// "finished"; an id the run never had is "not found".
    fn pending_call(&self, call_id: Uuid) -> Result<&Call, RunError> {
        if !self.exists() {
            return Err(RunError::NotFound);
        }
        if self.earlier_calls.contains(&call_id) {
            return Err(RunError::CallNotPending { call_id });
        }
        let call = self.call(call_id)?;
        if call.approval != ApprovalState::Pending {
            return Err(RunError::CallNotPending { call_id });
        }
        self.check_live()?;
        Ok(call)
    }

    fn approve(&self, call_id: Uuid, by: String) -> Decision {
        self.pending_call(call_id)?;
        Ok(vec![RunEvent::ToolCallApproved {
            id: self.id(),
            call_id,
            by,
        }])
    }

    fn deny(&self, call_id: Uuid, by: String, reason: String) -> Decision {
        self.pending_call(call_id)?;
        let reason = reason.trim().to_owned();
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(RunError::ReasonTooLong {
                max: MAX_REASON_CHARS,
            });
        }
        Ok(vec![RunEvent::ToolCallDenied {
            id: self.id(),
            call_id,
            by,
            reason,
        }])
    }

    fn pause(&self, executor: Uuid, reason: String, detail: String, needed: u64, available: i64) -> Decision {
        self.check_executor(executor)?;
        if self.calls.iter().any(|call| !call.finished) || self.answered {
            return Err(RunError::OutOfStep("a run pauses only before a model call"));
        }
        Ok(vec![RunEvent::Paused {
            id: self.id(),
            reason,
            detail,
            credits_needed: needed,
            credits_available: available,
        }])
    }

    fn cancel(&self, by: String, open_call_price: Option<(u32, CallPrice)>) -> Decision {
        self.check_live()?;
        // An executor streaming an answer may have sent ids live that are not recorded yet.
        let skipped_ids = match self.model_call_open {
            Some(_) if self.executor.is_some() => MAX_UNRECORDED_IDS,
            _ => 0,
        };
        let abandoned_call = match (self.model_call_open, open_call_price) {
            // Text recorded of the answer shows the request reached the provider; without any,
            // the call may never have been sent (cancelled right after its hold), and nothing is
            // charged rather than a prompt perhaps never read.
            (Some(open), Some((step, price))) if open == step && self.open_call_chars > 0 => {
                let completion_tokens = counted_tokens(self.open_call_chars).min(price.max_output_tokens);
                Some(AbandonedCall {
                    step,
                    prompt_tokens: price.prompt_tokens,
                    completion_tokens,
                    credits: price.credits(completion_tokens),
                })
            }
            _ => None,
        };
        Ok(vec![RunEvent::Cancelled {
            id: self.id() + skipped_ids,
            by,
            skipped_ids,
            abandoned_call,
        }])
    }

    /// The events `command` records on this state, or why it is refused. [`Aggregate::handle`]
    /// records them; an executor also asks ahead of an append, to build what it sends next
    /// (the next model call's request) while the store records it.
    pub fn decide(&self, command: RunCommand) -> Decision {
        Ok(match command {
            queue @ RunCommand::Queue { .. } => self.queue(queue)?,
            RunCommand::Start {
                executor,
                takeover,
                then_call_model,
            } => {
                let started = self.start(executor, takeover)?;
                self.then(started, |next| {
                    match (then_call_model, next.next_action(executor)) {
                        (Some(model), NextAction::CallModel { .. }) => next.start_llm_call(executor, model),
                        _ => Ok(Vec::new()),
                    }
                })?
            }
            RunCommand::StartLlmCall { executor, model } => self.start_llm_call(executor, model)?,
            RunCommand::RecordDeltas { executor, chunks } => self.record_deltas(executor, chunks)?,
            RunCommand::CompleteLlmCall {
                executor,
                record,
                content,
                tool_calls,
                last_chunks,
                start_first_call,
                then_complete,
            } => {
                let answered = self.complete_llm_call(executor, record, content, tool_calls, last_chunks)?;
                self.then(answered, |next| match next.calls.first() {
                    Some(first) if start_first_call && first.is_runnable() => {
                        next.start_tool_call(executor, first.call_id)
                    }
                    None if then_complete => next.complete(executor),
                    _ => Ok(Vec::new()),
                })?
            }
            RunCommand::FailLlmCall {
                executor,
                model,
                code,
                detail,
                retries,
            } => self.fail_llm_call(executor, model, code, detail, retries)?,
            RunCommand::StartToolCall { executor, call_id } => self.start_tool_call(executor, call_id)?,
            RunCommand::FinishToolCall {
                executor,
                call_id,
                result,
                then_call_model,
            } => {
                let finished = self.finish_tool_call(executor, call_id, result)?;
                self.then(finished, |next| match then_call_model {
                    // The finish recorded something, so the call exists: the step is done when every
                    // call of it is.
                    Some(model) if next.calls.iter().all(|call| call.finished) => {
                        next.start_llm_call(executor, model)
                    }
                    _ => Ok(Vec::new()),
                })?
            }
            RunCommand::Complete { executor } => self.complete(executor)?,
            RunCommand::Fail {
                executor,
                code,
                detail,
            } => self.fail(executor, code, detail)?,
            RunCommand::Approve { call_id, by } => self.approve(call_id, by)?,
            RunCommand::Deny { call_id, by, reason } => self.deny(call_id, by, reason)?,
            RunCommand::Pause {
                executor,
                reason,
                detail,
                credits_needed,
                credits_available,
            } => self.pause(executor, reason, detail, credits_needed, credits_available)?,
            RunCommand::Cancel { by, open_call_price } => self.cancel(by, open_call_price)?,
        })
    }

    /// `events`, followed by what `follow` decides on the state they lead to: two decisions
    /// recorded in one append. The follow-up is opportunistic: when the state refuses it (a
    /// later call of the answer waits for approval, so the run is released), only `events` are
    /// recorded and the executor asks for it separately if it still applies.
    fn then(&self, mut events: Vec<RunEvent>, follow: impl FnOnce(&Run) -> Decision) -> Decision {
        if events.is_empty() {
            return Ok(events);
        }
        let mut next = self.clone();
        for event in &events {
            next.apply(event.clone());
        }
        if let Ok(more) = follow(&next) {
            events.extend(more);
        }
        Ok(events)
    }

    fn call_mut(&mut self, call_id: Uuid) -> Option<&mut Call> {
        self.calls.iter_mut().find(|call| call.call_id == call_id)
    }

    /// After a decision on a call: the run waits for a worker once nothing is pending.
    fn after_decision(&mut self) {
        if !self
            .calls
            .iter()
            .any(|call| call.approval == ApprovalState::Pending)
        {
            self.status = RunStatus::Queued;
        }
    }
}

impl Aggregate for Run {
    const TYPE: &'static str = "run";
    type Command = RunCommand;
    type Event = RunEvent;
    type Error = RunError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.next_id = event.last_id() + 1;
        match event {
            RunEvent::Queued {
                run_id,
                org_id,
                conversation_id,
                agent_id,
                agent_version,
                ..
            } => {
                self.run_id = run_id;
                self.org_id = Some(org_id);
                self.conversation_id = conversation_id;
                self.agent_id = agent_id;
                self.agent_version = agent_version;
                self.status = RunStatus::Queued;
            }
            RunEvent::Started { executor, .. } | RunEvent::Resumed { executor, .. } => {
                if let RunEvent::Resumed {
                    discarded_step: Some(_),
                    ..
                } = &event
                {
                    // The text recorded of the call made again is void (the view clears it too).
                    self.open_call_chars = 0;
                }
                self.ever_started = true;
                self.executor = Some(executor);
                self.status = RunStatus::Running;
                self.credits_needed = None;
            }
            RunEvent::LlmCallStarted { step, .. } => {
                self.steps = self.steps.max(step);
                self.model_call_open = Some(step);
                self.open_call_chars = 0;
                self.earlier_calls
                    .extend(self.calls.drain(..).map(|call| call.call_id));
                self.answered = false;
            }
            RunEvent::MessageDelta { step, chunks, .. } => {
                if self.model_call_open == Some(step) {
                    let chars: usize = chunks.iter().map(|chunk| chunk.chars().count()).sum();
                    self.open_call_chars += chars as u64;
                }
            }
            RunEvent::LlmCallCompleted {
                prompt_tokens,
                completion_tokens,
                credits,
                ..
            } => {
                self.model_call_open = None;
                self.prompt_tokens += prompt_tokens;
                self.completion_tokens += completion_tokens;
                self.credits += credits;
                self.answered = true;
            }
            RunEvent::LlmCallFailed { .. } => self.model_call_open = None,
            RunEvent::MessageCompleted { content, .. } => self.last_content = content,
            RunEvent::ToolCallRequested { call, .. } => {
                self.answered = false;
                if call.approval == ApprovalState::Pending {
                    self.status = RunStatus::AwaitingApproval;
                    self.executor = None;
                }
                self.calls.push(call);
            }
            RunEvent::ToolCallApproved { call_id, .. } => {
                if let Some(call) = self.call_mut(call_id) {
                    call.approval = ApprovalState::Approved;
                }
                self.after_decision();
            }
            RunEvent::ToolCallDenied { call_id, .. } => {
                if let Some(call) = self.call_mut(call_id) {
                    call.approval = ApprovalState::Denied;
                    call.finished = true;
                }
                self.after_decision();
            }
            RunEvent::ToolCallStarted { call_id, attempt, .. } => {
                if let Some(call) = self.call_mut(call_id) {
                    call.attempts = attempt;
                }
            }
            RunEvent::ToolCallCompleted { call_id, .. } | RunEvent::ToolCallFailed { call_id, .. } => {
                if let Some(call) = self.call_mut(call_id) {
                    call.finished = true;
                }
            }
            RunEvent::Paused { credits_needed, .. } => {
                self.status = RunStatus::AwaitingCredits;
                self.executor = None;
                self.credits_needed = Some(credits_needed);
            }
            RunEvent::Completed { .. } => {
                self.status = RunStatus::Completed;
                self.executor = None;
            }
            RunEvent::Failed { .. } => {
                self.status = RunStatus::Failed;
                self.executor = None;
                self.model_call_open = None;
            }
            RunEvent::Cancelled { abandoned_call, .. } => {
                self.status = RunStatus::Cancelled;
                self.executor = None;
                self.model_call_open = None;
                if let Some(call) = abandoned_call {
                    self.prompt_tokens += call.prompt_tokens;
                    self.completion_tokens += call.completion_tokens;
                    self.credits += call.credits;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cqrs_es::test::TestFramework;

    use super::*;

    const RUN: Uuid = Uuid::from_u128(7);
    const EXECUTOR: Uuid = Uuid::from_u128(8);
    const OTHER: Uuid = Uuid::from_u128(9);

    /// A user's cancel, with no call price (an unbilled run).
    fn cancel_by_user() -> RunCommand {
        RunCommand::Cancel {
            by: "user:1".into(),
            open_call_price: None,
        }
    }

    fn queued() -> RunEvent {
        RunEvent::Queued {
            id: 1,
            run_id: RUN,
            org_id: Uuid::from_u128(1),
            conversation_id: Uuid::from_u128(2),
            agent_id: Uuid::from_u128(3),
            agent_version: 1,
            input: "hi".to_owned(),
        }
    }

    fn record() -> LlmCallRecord {
        LlmCallRecord {
            model: "echo".to_owned(),
            prompt_tokens: 3,
            completion_tokens: 2,
            usage_reported: true,
            credits: 1,
            latency_ms: 4,
            finish_reason: "tool_calls".to_owned(),
            retries: 0,
        }
    }

    /// Folds `events` and returns the state.
    fn state(events: Vec<RunEvent>) -> Run {
        let mut run = Run::default();
        for event in events {
            run.apply(event);
        }
        run
    }

    async fn decide(run: &mut Run, command: RunCommand) -> Result<Vec<RunEvent>, RunError> {
        let sink = EventSink::default();
        run.handle(command, &(), &sink).await?;
        Ok(sink.collect().await)
    }

    #[tokio::test]
    async fn a_run_walks_model_tool_model_and_every_event_takes_the_next_stream_id() {
        let mut run = state(vec![queued()]);
        assert_eq!(run.next_action(EXECUTOR), NextAction::Start);
        decide(
            &mut run,
            RunCommand::Start {
                executor: EXECUTOR,
                takeover: false,
                then_call_model: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(run.next_action(EXECUTOR), NextAction::CallModel { step: 1 });
        decide(
            &mut run,
            RunCommand::StartLlmCall {
                executor: EXECUTOR,
                model: "echo".into(),
            },
        )
        .await
        .unwrap();
        decide(
            &mut run,
            RunCommand::RecordDeltas {
                executor: EXECUTOR,
                chunks: vec!["a ".into(), "b".into()],
            },
        )
        .await
        .unwrap();
        assert_eq!(run.last_id(), 5, "queued 1, started 2, llm 3, deltas 4 and 5");
        let call = ModelToolCall {
            model_call_id: "c1".into(),
            name: "weather".into(),
            arguments: "{}".into(),
            approval_required: false,
            approval_expires_at: None,
        };
        decide(
            &mut run,
            RunCommand::CompleteLlmCall {
                executor: EXECUTOR,
                record: record(),
                content: String::new(),
                tool_calls: vec![call],
                last_chunks: Vec::new(),
                start_first_call: false,
                then_complete: false,
            },
        )
        .await
        .unwrap();
        let NextAction::CallTool(call) = run.next_action(EXECUTOR) else {
            panic!("a tool call is next")
        };
        assert_eq!(call.call_id, super::call_id(RUN, 1, 0));
        decide(
            &mut run,
            RunCommand::StartToolCall {
                executor: EXECUTOR,
                call_id: call.call_id,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            run.next_action(EXECUTOR),
            NextAction::CallTool(Call {
                attempts: 1,
                ..call.clone()
            })
        );
        decide(
            &mut run,
            RunCommand::FinishToolCall {
                executor: EXECUTOR,
                call_id: call.call_id,
                result: ToolResult::Output("sun".into()),
                then_call_model: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(run.next_action(EXECUTOR), NextAction::CallModel { step: 2 });
        assert_eq!(run.usage(), (3, 2, 1));
    }

    #[tokio::test]
    async fn a_step_boundary_records_the_answer_with_the_calls_start_and_the_last_result_with_the_next_model_call()
     {
        let mut run = state(vec![
            queued(),
            RunEvent::Started {
                id: 2,
                executor: EXECUTOR,
            },
            RunEvent::LlmCallStarted {
                id: 3,
                step: 1,
                model: "m".into(),
            },
        ]);
        let calls = ["a", "b"].map(|name| ModelToolCall {
            model_call_id: name.into(),
            name: name.into(),
            arguments: "{}".into(),
            approval_required: false,
            approval_expires_at: None,
        });
        let answered = RunCommand::CompleteLlmCall {
            executor: EXECUTOR,
            record: record(),
            content: String::new(),
            tool_calls: calls.to_vec(),
            last_chunks: vec!["a".into(), "b".into()],
            start_first_call: true,
            then_complete: false,
        };
        let types: Vec<String> = decide(&mut run, answered)
            .await
            .unwrap()
            .iter()
            .map(cqrs_es::DomainEvent::event_type)
            .collect();
        assert_eq!(
            types,
            [
                "message.delta",
                "llm_call.completed",
                "message.completed",
                "tool_call.requested",
                "tool_call.requested",
                "tool_call.started"
            ]
        );
        let (first, second) = (run.calls()[0].call_id, run.calls()[1].call_id);
        assert_eq!(
            run.calls()[0].attempts,
            1,
            "the first call is started in the same append"
        );
        let finish = |call_id, model: Option<&str>| RunCommand::FinishToolCall {
            executor: EXECUTOR,
            call_id,
            result: ToolResult::Output("ok".into()),
            then_call_model: model.map(str::to_owned),
        };
        let after_first = decide(&mut run, finish(first, Some("m"))).await.unwrap();
        assert_eq!(
            after_first.len(),
            1,
            "another call is unfinished: no model call yet"
        );
        decide(
            &mut run,
            RunCommand::StartToolCall {
                executor: EXECUTOR,
                call_id: second,
            },
        )
        .await
        .unwrap();
        let after_last = decide(&mut run, finish(second, Some("m"))).await.unwrap();
        assert!(
            matches!(
                after_last.as_slice(),
                [
                    RunEvent::ToolCallCompleted { .. },
                    RunEvent::LlmCallStarted { step: 2, .. }
                ]
            ),
            "{after_last:?}"
        );
        assert_eq!(run.next_action(EXECUTOR), NextAction::CallModel { step: 2 });
    }

    #[tokio::test]
    async fn an_answer_whose_later_call_needs_approval_starts_no_call_and_releases_the_run() {
        let mut run = state(vec![
            queued(),
            RunEvent::Started {
                id: 2,
                executor: EXECUTOR,
            },
            RunEvent::LlmCallStarted {
                id: 3,
                step: 1,
                model: "m".into(),
            },
        ]);
        let call = |name: &str, approval_required| ModelToolCall {
            model_call_id: name.into(),
            name: name.into(),
            arguments: "{}".into(),
            approval_required,
            approval_expires_at: None,
        };
        let answered = RunCommand::CompleteLlmCall {
            executor: EXECUTOR,
            record: record(),
            content: String::new(),
            tool_calls: vec![call("free", false), call("guarded", true)],
            last_chunks: Vec::new(),
            start_first_call: true,
            then_complete: false,
        };
        let events = decide(&mut run, answered).await.unwrap();
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, RunEvent::ToolCallStarted { .. })),
            "{events:?}"
        );
        assert_eq!(run.status(), RunStatus::AwaitingApproval);
        assert_eq!(run.calls()[0].attempts, 0);
    }

    #[tokio::test]
    async fn another_executor_cannot_record_steps_and_a_takeover_skips_the_ids_sent_live() {
        let mut run = state(vec![
            queued(),
            RunEvent::Started {
                id: 2,
                executor: EXECUTOR,
            },
            RunEvent::LlmCallStarted {
                id: 3,
                step: 1,
                model: "echo".into(),
            },
        ]);
        let refused = decide(
            &mut run,
            RunCommand::RecordDeltas {
                executor: OTHER,
                chunks: vec!["x".into()],
            },
        )
        .await;
        assert_eq!(refused, Err(RunError::NotExecutor));
        assert_eq!(run.next_action(OTHER), NextAction::Start);
        let duplicate = decide(
            &mut run,
            RunCommand::Start {
                executor: OTHER,
                takeover: false,
                then_call_model: None,
            },
        )
        .await;
        assert_eq!(
            duplicate,
            Err(RunError::HeldByAnother),
            "a duplicate dispatch never steals a live run"
        );
        decide(
            &mut run,
            RunCommand::Start {
                executor: OTHER,
                takeover: true,
                then_call_model: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(run.last_id(), 4 + MAX_UNRECORDED_IDS);
        assert_eq!(
            run.next_action(OTHER),
            NextAction::CallModel { step: 1 },
            "the open step is called again"
        );
        let stale = decide(
            &mut run,
            RunCommand::StartLlmCall {
                executor: EXECUTOR,
                model: "echo".into(),
            },
        )
        .await;
        assert_eq!(stale, Err(RunError::NotExecutor));
    }

    #[tokio::test]
    async fn a_cancel_while_a_model_streams_skips_the_ids_sent_live_and_one_between_steps_does_not() {
        let streaming = vec![
            queued(),
            RunEvent::Started {
                id: 2,
                executor: EXECUTOR,
            },
            RunEvent::LlmCallStarted {
                id: 3,
                step: 1,
                model: "echo".into(),
            },
        ];
        let mut run = state(streaming.clone());
        // The executor hands out ids from `next_id` live before recording them.
        assert_eq!(run.next_id(), 4);
        let events = decide(&mut run, cancel_by_user()).await.unwrap();
        let cancelled = RunEvent::Cancelled {
            id: 4 + MAX_UNRECORDED_IDS,
            by: "user:1".into(),
            skipped_ids: MAX_UNRECORDED_IDS,
            abandoned_call: None,
        };
        assert_eq!(events, vec![cancelled.clone()]);
        assert_eq!(
            cancelled.first_id(),
            4,
            "it accounts for every id that may have gone out live"
        );

        let mut idle = state(streaming[..2].to_vec());
        let events = decide(&mut idle, cancel_by_user()).await.unwrap();
        assert_eq!(
            events,
            vec![RunEvent::Cancelled {
                id: 3,
                by: "user:1".into(),
                skipped_ids: 0,
                abandoned_call: None,
            }]
        );
    }

    #[tokio::test]
    async fn a_call_cancelled_while_streaming_is_charged_for_the_text_recorded_of_it() {
        let price = CallPrice {
            prompt_tokens: 7,
            prompt_per_million: 1_000_000,
            completion_per_million: 2_000_000,
            max_output_tokens: 100,
        };
        let cancel = |open_call_price| RunCommand::Cancel {
            by: "user:1".into(),
            open_call_price,
        };
        // A run whose first model call streamed `chunks`, recorded.
        let streamed = |chunks: Vec<String>| {
            vec![
                queued(),
                RunEvent::Started {
                    id: 2,
                    executor: EXECUTOR,
                },
                RunEvent::LlmCallStarted {
                    id: 3,
                    step: 1,
                    model: "m".into(),
                },
                RunEvent::MessageDelta {
                    first_id: 4,
                    step: 1,
                    chunks,
                },
            ]
        };
        // 17 characters (é is one): 5 tokens counted.
        let mut run = state(streamed(vec!["Héllo world".into(), ", this".into()]));
        let other_step = decide(&mut run.clone(), cancel(Some((2, price)))).await.unwrap();
        assert!(
            matches!(
                &other_step[0],
                RunEvent::Cancelled {
                    abandoned_call: None,
                    ..
                }
            ),
            "a price for another step than the open call's charges nothing: {other_step:?}"
        );
        let events = decide(&mut run, cancel(Some((1, price)))).await.unwrap();
        let expected = AbandonedCall {
            step: 1,
            prompt_tokens: 7,
            completion_tokens: 5,
            credits: 7 + 10,
        };
        assert!(
            matches!(&events[0], RunEvent::Cancelled { abandoned_call: Some(call), .. } if *call == expected),
            "{events:?}"
        );
        assert_eq!(run.usage(), (7, 5, 17), "the run's totals count the call");

        // Text of a call made again after a takeover is void: only the new attempt's counts,
        // and with none recorded yet the call may not have been sent: nothing is charged.
        let mut taken_over = streamed(vec!["a long text that was never answered".into()]);
        taken_over.push(RunEvent::Resumed {
            id: 5 + MAX_UNRECORDED_IDS,
            executor: OTHER,
            discarded_step: Some(1),
            skipped_ids: MAX_UNRECORDED_IDS,
        });
        let mut resumed = state(taken_over);
        let events = decide(&mut resumed, cancel(Some((1, price)))).await.unwrap();
        assert!(
            matches!(
                &events[0],
                RunEvent::Cancelled {
                    abandoned_call: None,
                    ..
                }
            ),
            "no text recorded of the call: it may never have been sent, nothing is charged: {events:?}"
        );
    }

    #[tokio::test]
    async fn a_run_short_of_credits_pauses_holding_nothing_and_a_later_start_resumes_it() {
        let mut run = state(vec![
            queued(),
            RunEvent::Started {
                id: 2,
                executor: EXECUTOR,
            },
        ]);
        let pause = |executor| RunCommand::Pause {
            executor,
            reason: "insufficient_credits".into(),
            detail: "short".into(),
            credits_needed: 40,
            credits_available: 12,
        };
        assert_eq!(
            decide(&mut run.clone(), pause(OTHER)).await,
            Err(RunError::NotExecutor),
            "only the executor holding the run pauses it"
        );
        let events = decide(&mut run, pause(EXECUTOR)).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(run.status(), RunStatus::AwaitingCredits);
        assert_eq!((run.executor(), run.credits_needed()), (None, Some(40)));
        assert_eq!(run.next_action(EXECUTOR), NextAction::AwaitCredits);

        let mut cancelled = run.clone();
        let events = decide(&mut cancelled, cancel_by_user()).await.unwrap();
        assert_eq!(
            events,
            vec![RunEvent::Cancelled {
                id: 4,
                by: "user:1".into(),
                skipped_ids: 0,
                abandoned_call: None,
            }],
            "a paused run can be cancelled, and it skips no ids (nothing streams)"
        );

        let events = decide(
            &mut run,
            RunCommand::Start {
                executor: OTHER,
                takeover: false,
                then_call_model: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![RunEvent::Resumed {
                id: 4,
                executor: OTHER,
                discarded_step: None,
                skipped_ids: 0,
            }]
        );
        assert_eq!(run.status(), RunStatus::Running);
        assert_eq!(run.credits_needed(), None);
        assert_eq!(run.next_action(OTHER), NextAction::CallModel { step: 1 });
    }

    #[test]
    fn an_approval_must_name_a_pending_call_of_this_run() {
        let pending = Call {
            call_id: Uuid::from_u128(100),
            model_call_id: "c".into(),
            name: "pay".into(),
            arguments: "{}".into(),
            approval: ApprovalState::Pending,
            attempts: 0,
            finished: false,
            expires_at: None,
        };
        let given = vec![
            queued(),
            RunEvent::Started {
                id: 2,
                executor: EXECUTOR,
            },
            RunEvent::LlmCallStarted {
                id: 3,
                step: 1,
                model: "echo".into(),
            },
            RunEvent::ToolCallRequested {
                id: 4,
                step: 1,
                call: pending,
            },
        ];
        TestFramework::<Run>::with(())
            .given(given.clone())
            .when(RunCommand::Approve {
                call_id: Uuid::from_u128(101),
                by: "user:1".into(),
            })
            .then_expect_error(RunError::CallNotFound {
                call_id: Uuid::from_u128(101),
            });
        let mut approved = given.clone();
        approved.push(RunEvent::ToolCallApproved {
            id: 5,
            call_id: Uuid::from_u128(100),
            by: "user:1".into(),
        });
        TestFramework::<Run>::with(())
            .given(approved)
            .when(RunCommand::Deny {
                call_id: Uuid::from_u128(100),
                by: "user:2".into(),
                reason: "no".into(),
            })
            .then_expect_error(RunError::CallNotPending {
                call_id: Uuid::from_u128(100),
            });
        TestFramework::<Run>::with(())
            .given(given)
            .when(RunCommand::Approve {
                call_id: Uuid::from_u128(100),
                by: "user:1".into(),
            })
            .then_expect_events(vec![RunEvent::ToolCallApproved {
                id: 5,
                call_id: Uuid::from_u128(100),
                by: "user:1".into(),
            }]);
    }

    #[test]
    fn nothing_happens_to_an_ended_run() {
        TestFramework::<Run>::with(())
            .given(vec![
                queued(),
                RunEvent::Cancelled {
                    id: 2,
                    by: "user:1".into(),
                    skipped_ids: 0,
                    abandoned_call: None,
                },
            ])
            .when(cancel_by_user())
            .then_expect_error(RunError::Finished {
                status: RunStatus::Cancelled,
            });
    }
}
