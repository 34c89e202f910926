//! One run, from its recorded state to its end (or to a wait for approval).

use std::sync::Arc;
use std::time::Duration;

use commands::billing::ReserveOutcome;
use commands::runs::{RunService, RunTranscript, RunsError};
use domain::agent::AgentDefinition;
use domain::run::{NextAction, Run, RunCommand, RunError, RunEvent};
use eventstore::{CommandContext, CommandError, Committed};
use streams::LiveBus;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::credits::Hold;
use super::{PriceTable, ResolvedTool, Toolbox};
use crate::llm::{ChatModel, Models};

/// How the executor batches and bounds its work.
#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// Text deltas are recorded at least this often while a model streams (the durable record
    /// of a message being generated lags the live stream by at most this, and the time its
    /// append takes: a batch due while the one before is being recorded waits for it).
    pub delta_window: Duration,
    /// …or as soon as this many chunks wait. While one batch is recorded the stream goes on
    /// into the next, so up to twice this many ids are sent live unrecorded: keep it at most
    /// half of [`domain::run::MAX_UNRECORDED_IDS`].
    pub delta_batch: usize,
    /// Credits per model call.
    pub prices: PriceTable,
    /// The answer's limit sent for an agent that sets none: with billing, every call's worst
    /// case must be bounded before it is made.
    pub default_max_output_tokens: u32,
    /// How long a model call waits for credits other runs hold (reserved for calls under way,
    /// and mostly released when those are charged) before its run pauses in `awaiting_credits`.
    /// Only while the balance itself covers the call: a balance short of it pauses at once.
    pub credit_wait: Duration,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        Self {
            delta_window: Duration::from_millis(200),
            delta_batch: 256,
            prices: PriceTable::default(),
            default_max_output_tokens: 4_096,
            credit_wait: Duration::from_secs(60),
        }
    }
}

/// Why an execution stopped before the run did. The run stays as recorded; dispatching it
/// again later goes on from there.
#[derive(Debug, Error)]
pub enum ExecutionError {
    /// The store or a lookup failed.
    #[error(transparent)]
    Runs(#[from] RunsError),
}

/// What one execution attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The run ended (completed, failed or cancelled).
    Ended,
    /// It waits for approvals; no executor holds it.
    AwaitingApproval,
    /// It waits for credits; no executor holds it, and it is woken once credits arrive.
    AwaitingCredits,
    /// Another executor holds it, or it was cancelled meanwhile.
    LetGo,
    /// This execution held the run and another executor took it over (this one was frozen or
    /// too slow): the run goes on there.
    TakenOver,
}

/// Executes runs: one per process (it has an id the runs it takes record, to fence the others).
pub struct Executor {
    id: Uuid,
    service: Arc<RunService>,
    models: Models,
    toolbox: Arc<dyn Toolbox>,
    settings: ExecutorSettings,
    live: Option<LiveBus>,
}

/// What a run needs while it executes.
pub(super) struct Execution<'a> {
    pub(super) executor: &'a Executor,
    pub(super) run_id: Uuid,
    pub(super) run: Run,
    pub(super) context: CommandContext,
    pub(super) agent: AgentDefinition,
    pub(super) model: Arc<dyn ChatModel>,
    pub(super) tools: Vec<ResolvedTool>,
    pub(super) cancel: CancellationToken,
    /// The messages of the conversation's earlier runs, read once (they never change).
    pub(super) history: Option<Vec<commands::runs::TranscriptMessage>>,
    /// This run's messages: read once, then kept up to date from what this execution records
    /// (within an execution no one else records anything the model reads; read before the run
    /// is taken, they are read again if another executor recorded meanwhile: `start`).
    pub(super) run_transcript: Option<RunTranscript>,
    /// The next model call's hold, asked for while its start was recorded (with the run's
    /// start, or the tool result before it): its step, the hold and the ledger's answer.
    pub(super) early_hold: Option<(u32, Hold, ReserveOutcome)>,
    /// A tool call this execution recorded as started together with the model's answer: the
    /// next step sends it without recording its start again.
    pub(super) call_started_here: Option<Uuid>,
    /// A model call this execution recorded as started together with the last tool result.
    pub(super) model_started_here: Option<u32>,
    /// The latest `llm_call.started` this execution recorded: what its reservation names as
    /// its cause.
    pub(super) llm_call_started: Option<Uuid>,
    /// The latest `llm_call.completed` this execution recorded: what its charge names.
    pub(super) llm_call_completed: Option<Uuid>,
    /// The latest event this execution recorded: what the next call's hold names.
    pub(super) last_event: Option<Uuid>,
    /// The last call's charge, being recorded beside the run's next work; `true` once recorded.
    pub(super) pending_settle: Option<tokio::task::JoinHandle<bool>>,
    /// Whether a hold this execution asked for is not yet seen charged (the call failed, or
    /// its charge did).
    pub(super) may_hold_credits: bool,
    /// Whether a charge this execution made failed: the run's end settles what it left,
    /// whatever later charges did.
    pub(super) charge_missed: bool,
    /// The keys under which this execution holds the difference of the open call's worst case
    /// (see `take_hold`): released with that call's charge, or at the run's end when the call
    /// was never charged.
    pub(super) topped_up: Vec<String>,
    /// Whether an earlier execution took model steps of the run (and may have left a hold).
    /// With either, the run's end reads the ledger to settle what is left; a run whose every
    /// hold this execution charged skips that read.
    pub(super) resumed: bool,
}

impl Executor {
    /// An executor with a fresh id.
    pub fn new(
        service: Arc<RunService>,
        models: Models,
        toolbox: Arc<dyn Toolbox>,
        settings: ExecutorSettings,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            service,
            models,
            toolbox,
            settings,
            live: None,
        }
    }

    /// The same executor, sending each chunk of a model's answer to the run's readers on
    /// `live` the moment it arrives (with the id it is then recorded under).
    pub fn with_live(mut self, live: LiveBus) -> Self {
        self.live = Some(live);
        self
    }

    pub(super) fn live(&self) -> Option<&LiveBus> {
        self.live.as_ref()
    }

    /// Its id (recorded on the runs it takes).
    pub fn id(&self) -> Uuid {
        self.id
    }

    pub(super) fn settings(&self) -> &ExecutorSettings {
        &self.settings
    }

    pub(super) fn toolbox(&self) -> &dyn Toolbox {
        self.toolbox.as_ref()
    }

    pub(super) fn service(&self) -> &RunService {
        &self.service
    }

    /// Drives `run_id` until it ends, waits for approval, or `cancel` fires. With `takeover`,
    /// it takes the run from another executor (the dispatcher knows that one stopped);
    /// without, a run held by another is let go.
    pub async fn execute(
        &self,
        run_id: Uuid,
        cancel: CancellationToken,
        takeover: bool,
    ) -> Result<Outcome, ExecutionError> {
        let done = CancellationToken::new();
        let _stop_watching = done.clone().drop_guard();
        tokio::spawn(watch(
            Arc::clone(&self.service),
            run_id,
            self.id,
            cancel.clone(),
            done,
        ));
        self.execute_watched(run_id, cancel, takeover).await
    }

    async fn execute_watched(
        &self,
        run_id: Uuid,
        cancel: CancellationToken,
        takeover: bool,
    ) -> Result<Outcome, ExecutionError> {
        let key = run_id.to_string();
        let run = self.service.runs().load(&key).await.map_err(RunsError::from)?;
        match run.next_action(self.id) {
            NextAction::Finished => return Ok(Outcome::Ended),
            NextAction::AwaitApproval => return Ok(Outcome::AwaitingApproval),
            NextAction::AwaitCredits if !self.credits_cover(&run).await? => {
                return Ok(Outcome::AwaitingCredits);
            }
            _ => {}
        }
        let context = CommandContext::system(run.org_id());
        let resumed = run.steps() > 0;
        let (agent_id, version) = run.agent();
        let agent = self.service.agent_definition(agent_id, version).await;
        let found = match agent {
            Ok(agent) => match self.models.get(&agent.model) {
                Ok(model) => Ok((agent, model)),
                Err(error) => Err(("unknown_model", error.to_string())),
            },
            Err(RunsError::Agent(error)) => Err(("agent_not_found", error.to_string())),
            Err(error) => return Err(error.into()),
        };
        let (agent, model) = match found {
            Ok(found) => found,
            Err((code, detail)) => {
                return self
                    .start_to_fail(run_id, takeover, &context, code, &detail)
                    .await;
            }
        };
        let org_id = run.org_id().unwrap_or_default();
        let tools = self.toolbox.resolve(org_id, &agent.tools).await;
        let mut execution = Execution {
            executor: self,
            run_id,
            run,
            context,
            agent,
            model,
            tools,
            cancel,
            history: None,
            run_transcript: None,
            early_hold: None,
            call_started_here: None,
            model_started_here: None,
            llm_call_started: None,
            llm_call_completed: None,
            last_event: None,
            pending_settle: None,
            may_hold_credits: false,
            charge_missed: false,
            topped_up: Vec::new(),
            resumed,
        };
        if !execution.start(takeover).await? {
            return Ok(Outcome::LetGo);
        }
        match execution.drive().await? {
            Outcome::LetGo => self.after_letting_go(run_id).await,
            outcome => Ok(outcome),
        }
    }

    /// Why the execution let go of `run_id`: another executor holds it, still going
    /// ([`Outcome::TakenOver`]), or it ended meanwhile (cancelled). Then whatever it still holds
    /// in the ledger is settled: a reservation this execution committed just after the cancel
    /// settled the run would otherwise stay held.
    async fn after_letting_go(&self, run_id: Uuid) -> Result<Outcome, ExecutionError> {
        let run = self
            .service
            .runs()
            .load(&run_id.to_string())
            .await
            .map_err(RunsError::from)?;
        if run.status().is_terminal() {
            self.service
                .settle_run_credits(run_id, run.org_id().unwrap_or_default())
                .await?;
            return Ok(Outcome::LetGo);
        }
        if run.executor().is_some_and(|holder| holder != self.id) {
            return Ok(Outcome::TakenOver);
        }
        Ok(Outcome::LetGo)
    }

    /// Takes the run, so that its failure is recorded by its executor, and fails it with
    /// `code` (its agent or model cannot be found).
    async fn start_to_fail(
        &self,
        run_id: Uuid,
        takeover: bool,
        context: &CommandContext,
        code: &str,
        detail: &str,
    ) -> Result<Outcome, ExecutionError> {
        let key = run_id.to_string();
        let start = RunCommand::Start {
            executor: self.id,
            takeover,
            then_call_model: None,
        };
        let run = match self.service.runs().execute(&key, start, context).await {
            Ok(committed) => committed.state,
            Err(CommandError::Rejected(_)) => return Ok(Outcome::LetGo),
            Err(error) => return Err(RunsError::from(error).into()),
        };
        let fail = RunCommand::Fail {
            executor: self.id,
            code: code.to_owned(),
            detail: detail.to_owned(),
        };
        match self.service.runs().execute(&key, fail, context).await {
            Ok(_) => {
                let org_id = run.org_id().unwrap_or_default();
                self.service
                    .end_conversation_run(run.conversation_id(), run_id, org_id)
                    .await?;
                self.service.settle_run_credits(run_id, org_id).await?;
                Ok(Outcome::Ended)
            }
            Err(CommandError::Rejected(_)) => Ok(Outcome::LetGo),
            Err(error) => Err(RunsError::from(error).into()),
        }
    }
}

/// How often an executing run checks whether it moved on without this executor.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Cancels `cancel` when the run ends or another executor takes it (a cancel on another node,
/// a takeover after this process was frozen), so the model or tool call in flight is dropped
/// within [`WATCH_EVERY`] instead of at the next record; stops when `done` fires.
async fn watch(
    service: Arc<RunService>,
    run_id: Uuid,
    executor: Uuid,
    cancel: CancellationToken,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        match service.run_moved_on(run_id, executor).await {
            Ok(true) => {
                cancel.cancel();
                return;
            }
            Ok(false) => {}
            Err(error) => tracing::debug!(%error, run = %run_id, "could not check the run"),
        }
    }
}

impl<'a> Execution<'a> {
    async fn drive(&mut self) -> Result<Outcome, ExecutionError> {
        let executor = self.executor.id;
        loop {
            if self.cancel.is_cancelled() {
                return Ok(Outcome::LetGo);
            }
            let outcome = match self.run.next_action(executor) {
                NextAction::Finished => return Ok(Outcome::Ended),
                NextAction::AwaitApproval => return Ok(Outcome::AwaitingApproval),
                NextAction::AwaitCredits => return Ok(Outcome::AwaitingCredits),
                NextAction::Start => return Ok(Outcome::LetGo),
                NextAction::Complete => {
                    // The last call's charge is in before the run says it ended.
                    self.settled().await;
                    self.record(RunCommand::Complete { executor }).await?;
                    None
                }
                NextAction::CallModel { step } if step > self.agent.max_steps => {
                    let detail = format!(
                        "the agent may take at most {} model steps per run, and the model still wanted to go on",
                        self.agent.max_steps
                    );
                    self.record(RunCommand::Fail {
                        executor,
                        code: "max_steps_exceeded".to_owned(),
                        detail,
                    })
                    .await?;
                    None
                }
                NextAction::CallModel { .. } => self.call_model().await?,
                NextAction::CallTool(call) => self.call_tool(call).await?,
            };
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
            if self.run.status().is_terminal() {
                self.settled().await;
                let (service, org_id) = (&self.executor.service, self.run.org_id().unwrap_or_default());
                service
                    .end_conversation_run(self.run.conversation_id(), self.run_id, org_id)
                    .await?;
                if self.may_hold_credits || !self.topped_up.is_empty() || self.resumed {
                    service.settle_run_credits(self.run_id, org_id).await?;
                }
                return Ok(Outcome::Ended);
            }
        }
    }

    /// Records `command`; `Ok(false)` when the run refused it because it has moved on without
    /// this executor (cancelled, or taken over): the execution stops there.
    pub(super) async fn record(&mut self, command: RunCommand) -> Result<bool, ExecutionError> {
        let outcome = self.recording(command).await;
        self.recorded(outcome)
    }

    /// Records `command` without borrowing the execution, so it can go on meanwhile (the model's
    /// stream is read while its text is recorded); hand the outcome to [`Self::recorded`].
    pub(super) fn recording(
        &self,
        command: RunCommand,
    ) -> impl Future<Output = Result<Committed<Run>, CommandError<RunError>>> + Send + 'a {
        let (executor, key, context) = (self.executor, self.run_id.to_string(), self.context.clone());
        async move { executor.service.runs().execute(&key, command, &context).await }
    }

    /// Takes in what recording a command came to: `Ok(false)` when the run refused it because
    /// it has moved on without this executor.
    pub(super) fn recorded(
        &mut self,
        outcome: Result<Committed<Run>, CommandError<RunError>>,
    ) -> Result<bool, ExecutionError> {
        match outcome {
            Ok(Committed {
                state,
                events,
                appended,
                ..
            }) => {
                self.run = state;
                if let Some(last) = appended.last() {
                    self.last_event = Some(last.event_id);
                }
                if let Some(transcript) = &mut self.run_transcript {
                    events.iter().for_each(|event| transcript.apply(event));
                }
                for (event, appended) in events.iter().zip(&appended) {
                    match event {
                        RunEvent::LlmCallStarted { .. } => self.llm_call_started = Some(appended.event_id),
                        RunEvent::LlmCallCompleted { .. } => {
                            self.llm_call_completed = Some(appended.event_id);
                        }
                        _ => {}
                    }
                }
                Ok(true)
            }
            Err(CommandError::Rejected(RunError::Finished { .. } | RunError::NotExecutor)) => {
                self.cancel.cancel();
                Ok(false)
            }
            Err(error) => Err(RunsError::from(error).into()),
        }
    }
}
