//! Taking a run: its start recorded by this executor, with its next model call when it goes on
//! with one, and, when runs are billed, that call's hold in the same transaction.

use commands::runs::RunsError;
use domain::run::{Run, RunCommand, RunError, RunEvent};
use eventstore::{CommandError, Committed};

use super::credits::Hold;
use super::run_loop::{Execution, ExecutionError};

impl Execution<'_> {
    /// Records the run's start by this executor. `false` when the run refused it (another
    /// executor holds it, or it ended).
    ///
    /// A billed run's first model call is held before it is made: asked for after the start's
    /// commit, the hold was a second commit in series before the request could leave (billing
    /// bench, one organization: `run.started → llm_call.started` 10.7 ms p50, against nothing
    /// unbilled). So the hold is built first, from the request the call will send (the
    /// conversation is read before the start), and recorded with the start. When the two
    /// cannot go together (the account kept changing on other nodes, the store failed), the
    /// start is recorded alone and the hold asked for before the request, as for any call.
    pub(super) async fn start(&mut self, takeover: bool) -> Result<bool, ExecutionError> {
        // A run out of steps is failed by `drive`, with no call started.
        let then_call_model = (self.run.steps() < self.agent.max_steps).then(|| self.agent.model.clone());
        let start = RunCommand::Start {
            executor: self.executor.id(),
            takeover,
            then_call_model,
        };
        let next_id = self.run.next_id();
        if let Some((step, hold)) = self.start_hold(&start).await?
            && let Some(org_id) = self.run.org_id()
        {
            let service = self.executor.service();
            let call_hold = hold.call_hold(step);
            let held = service
                .record_with_hold(self.run_id, start.clone(), &self.context, org_id, &call_hold)
                .await;
            match held {
                None => {}
                Some(held)
                    if matches!(
                        held.recorded,
                        Err(CommandError::Conflict | CommandError::Store(_))
                    ) =>
                {
                    // As for a charged answer (`credits.rs`): a store error may hide a start that
                    // was committed: the start recorded alone is then refused as out of step.
                    tracing::debug!(run = %self.run_id, "the run's start and its first hold could not be recorded together");
                }
                Some(held) => {
                    let started = self.started(held.recorded, next_id)?;
                    match held.hold {
                        Some(Ok(answer)) if started => {
                            let hold = hold.caused_by(self.llm_call_started);
                            self.early_hold = Some((step, hold, answer));
                        }
                        // Asked for again before the request.
                        Some(Err(error)) => {
                            tracing::debug!(%error, run = %self.run_id, "the first hold was not recorded with the start");
                        }
                        _ => {}
                    }
                    return Ok(started);
                }
            }
        }
        let outcome = self.recording(start).await;
        self.started(outcome, next_id)
    }

    /// When runs are billed and `start` also starts a model call: that call's step and hold,
    /// built from the request it will send (the store decides the same events on the same
    /// state).
    async fn start_hold(&mut self, start: &RunCommand) -> Result<Option<(u32, Hold)>, ExecutionError> {
        if self.executor.service().billing().is_none() {
            return Ok(None);
        }
        let Ok(events) = self.run.decide(start.clone()) else {
            return Ok(None);
        };
        let Some(step) = events.iter().find_map(|event| match event {
            RunEvent::LlmCallStarted { step, .. } => Some(*step),
            _ => None,
        }) else {
            return Ok(None);
        };
        self.transcript().await?;
        let request = self.request(&self.transcript_with(&events));
        Ok(self.hold_for(step, &request).map(|hold| (step, hold)))
    }

    /// Takes in what recording the start came to. `next_id` is the run's next stream id when
    /// the start was decided here: when the store decided it on a later state (another executor
    /// recorded meanwhile), the run's messages read before the start are read again.
    fn started(
        &mut self,
        outcome: Result<Committed<Run>, CommandError<RunError>>,
        next_id: u64,
    ) -> Result<bool, ExecutionError> {
        match outcome {
            Err(CommandError::Rejected(_)) => Ok(false),
            Err(error) => Err(RunsError::from(error).into()),
            Ok(committed) => {
                if committed.events.first().map(RunEvent::first_id) != Some(next_id) {
                    self.run_transcript = None;
                }
                self.recorded(Ok(committed))?;
                self.model_started_here = self.llm_call_started.and(self.run.open_model_call());
                Ok(true)
            }
        }
    }
}
