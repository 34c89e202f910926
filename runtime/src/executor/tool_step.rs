//! One tool call: checked, recorded as started before the request leaves, called with the
//! call's idempotency key, and its outcome recorded.

use domain::run::{Call, RunCommand, ToolResult};

use super::run_loop::{Execution, ExecutionError, Outcome};

impl Execution<'_> {
    /// Runs `call` (again, with the same key, when an earlier attempt has no outcome).
    pub(super) async fn call_tool(&mut self, call: Call) -> Result<Option<Outcome>, ExecutionError> {
        let executor = self.executor.id();
        let Some(tool) = self
            .tools
            .iter()
            .find(|tool| tool.spec.name == call.name)
            .cloned()
        else {
            let result = ToolResult::Failed {
                code: "unknown_tool".to_owned(),
                detail: format!("there is no tool named {:?} available to this agent", call.name),
            };
            return self.finish(call, result).await;
        };
        let arguments = match self.executor.toolbox().check_arguments(&tool, &call.arguments) {
            Ok(arguments) => arguments,
            Err(message) => {
                let result = ToolResult::Failed {
                    code: "invalid_arguments".to_owned(),
                    detail: message,
                };
                return self.finish(call, result).await;
            }
        };
        let already_started = self.call_started_here.take() == Some(call.call_id);
        if !already_started
            && !self
                .record(RunCommand::StartToolCall {
                    executor,
                    call_id: call.call_id,
                })
                .await?
        {
            return Ok(Some(Outcome::LetGo));
        }
        let key = call.call_id.to_string();
        let result = tokio::select! {
            () = self.cancel.cancelled() => return Ok(Some(Outcome::LetGo)),
            result = self.executor.toolbox().call(&tool, self.run_id, &key, arguments) => result,
        };
        self.finish(call, result).await
    }

    /// Records the call's result; when it is the step's last unfinished call and the agent may
    /// take another step, the next model call is recorded as started in the same append.
    async fn finish(&mut self, call: Call, result: ToolResult) -> Result<Option<Outcome>, ExecutionError> {
        let last_of_step = self
            .run
            .calls()
            .iter()
            .all(|other| other.call_id == call.call_id || other.finished);
        let then_call_model =
            (last_of_step && self.run.steps() < self.agent.max_steps).then(|| self.agent.model.clone());
        let recorded = self
            .record(RunCommand::FinishToolCall {
                executor: self.executor.id(),
                call_id: call.call_id,
                result,
                then_call_model,
            })
            .await?;
        self.model_started_here = self.run.open_model_call();
        Ok((!recorded).then_some(Outcome::LetGo))
    }
}
