//! `/v1/runs`: reading a run, cancelling it, and deciding on its tool calls.

use commands::runs::{CallView, PendingApproval, RunView, StepView};
use domain::run::{ApprovalState, RunStatus};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use projections::runs::queries::RunFilter;
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, TextBlock};

/// Runs of the caller's organization.
pub struct RunsApi;

/// Where a run stands.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
pub enum RunStatusName {
    /// Waiting for an executor.
    Queued,
    /// An executor is working on it.
    Running,
    /// A tool call waits for a person's decision.
    AwaitingApproval,
    /// The organization's credits do not cover the next model call: it goes on by itself once
    /// credits arrive (`run.paused` says how many it needs).
    AwaitingCredits,
    /// The agent answered.
    Completed,
    /// It stopped on an error (`error` says which).
    Failed,
    /// Someone cancelled it.
    Cancelled,
}

impl From<RunStatus> for RunStatusName {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Queued => Self::Queued,
            RunStatus::Running => Self::Running,
            RunStatus::AwaitingApproval => Self::AwaitingApproval,
            RunStatus::AwaitingCredits => Self::AwaitingCredits,
            RunStatus::Completed => Self::Completed,
            RunStatus::Failed => Self::Failed,
            RunStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<RunStatusName> for RunStatus {
    fn from(name: RunStatusName) -> Self {
        match name {
            RunStatusName::Queued => Self::Queued,
            RunStatusName::Running => Self::Running,
            RunStatusName::AwaitingApproval => Self::AwaitingApproval,
            RunStatusName::AwaitingCredits => Self::AwaitingCredits,
            RunStatusName::Completed => Self::Completed,
            RunStatusName::Failed => Self::Failed,
            RunStatusName::Cancelled => Self::Cancelled,
        }
    }
}

/// Whether a tool call may run.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
pub enum ApprovalName {
    /// The agent's policy lets it run at once.
    NotRequired,
    /// Waiting for a person.
    Pending,
    /// A person approved it.
    Approved,
    /// A person denied it, or its approval expired.
    Denied,
}

impl From<ApprovalState> for ApprovalName {
    fn from(state: ApprovalState) -> Self {
        match state {
            ApprovalState::NotRequired => Self::NotRequired,
            ApprovalState::Pending => Self::Pending,
            ApprovalState::Approved => Self::Approved,
            ApprovalState::Denied => Self::Denied,
        }
    }
}

/// Why a tool call failed.
#[derive(Object)]
pub struct ToolCallError {
    /// A stable code: `unknown_tool`, `invalid_arguments`, `timeout`, `error_status`, …
    code: String,
    /// What went wrong (the model was told this).
    detail: String,
}

/// One tool call of a step. Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ToolCallBody {
    /// Agentry's id for the call: approve or deny it by this id.
    call_id: Uuid,
    /// The tool.
    name: String,
    /// The arguments as the model wrote them (JSON text).
    arguments: String,
    /// Whether it may run.
    approval: ApprovalName,
    /// `requested`, `awaiting_approval`, `running`, `completed`, `failed` or `denied`.
    status: String,
    /// How many times it was sent to the tool.
    attempts: u32,
    /// The tool's output.
    output: Option<String>,
    /// Why it failed.
    error: Option<ToolCallError>,
    /// Who approved or denied it.
    decided_by: Option<String>,
    /// The denial's reason.
    reason: Option<String>,
}

/// One model call of a run and what came of it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StepBody {
    /// 1 for the run's first model call.
    step: u32,
    /// The model.
    model: String,
    /// `running`, `completed`, `failed`, or `cancelled` (the run was cancelled while it streamed:
    /// charged for the text recorded of it, tokens counted).
    status: String,
    /// The answer's text (so far, while it is generated).
    content: String,
    /// Prompt tokens.
    prompt_tokens: u64,
    /// Completion tokens.
    completion_tokens: u64,
    /// Credits by the price table.
    credits: u64,
    /// From the request to the answer's last byte, in milliseconds.
    latency_ms: u64,
    /// The provider's finish reason; absent while running.
    finish_reason: Option<String>,
    /// Retries before the model answered.
    retries: u32,
    /// The answer's tool calls.
    tool_calls: Vec<ToolCallBody>,
}

/// Tokens and credits of a run.
#[derive(Object)]
pub struct UsageBody {
    /// Prompt tokens of every model call.
    prompt_tokens: u64,
    /// Completion tokens of every model call.
    completion_tokens: u64,
    /// Credits of every model call.
    credits: u64,
}

/// Why a run failed.
#[derive(Object)]
pub struct RunErrorBody {
    /// A stable code: `max_steps_exceeded`, `llm_timeout`, `llm_provider_error`, `unknown_model`, …
    code: String,
    /// What went wrong.
    detail: String,
}

/// A run with its steps. Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RunBody {
    /// Its id.
    id: Uuid,
    /// Its conversation.
    conversation_id: Uuid,
    /// Where it stands.
    status: RunStatusName,
    /// The user's input.
    input: String,
    /// The final answer, once completed.
    output: Option<String>,
    /// Why it failed.
    error: Option<RunErrorBody>,
    /// Its model calls, each with its tool calls.
    steps: Vec<StepBody>,
    /// Tokens and credits so far.
    usage: UsageBody,
    /// The id of the run's last stream event so far.
    last_event_id: u64,
}

/// One page of runs, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RunList {
    /// This page.
    pub runs: Vec<RunBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// A tool call awaiting a person's decision. Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PendingApprovalBody {
    /// The run waiting for it.
    run_id: Uuid,
    /// The call: approve or deny it at `/v1/runs/{run_id}/tool-calls/{call_id}/…`.
    call_id: Uuid,
    /// The tool.
    name: String,
    /// The arguments as the model wrote them (JSON text): what an approval approves.
    arguments: String,
    /// When it is denied with reason `expired`; absent when the agent set no approval timeout.
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One page of calls awaiting approval, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PendingApprovalList {
    /// This page.
    approvals: Vec<PendingApprovalBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

fn pending_body(pending: PendingApproval) -> PendingApprovalBody {
    PendingApprovalBody {
        run_id: pending.run_id,
        call_id: pending.call_id,
        name: pending.name,
        arguments: pending.arguments,
        expires_at: pending.expires_at,
    }
}

/// A denial.
#[derive(Object)]
struct DenyRequest {
    /// Why (at most 500 characters); the model is told.
    #[oai(validator(max_length = 500))]
    reason: Option<TextBlock>,
}

#[derive(ApiResponse)]
enum Accepted {
    /// Recorded; the run goes on (or stops) in the background.
    #[oai(status = 202)]
    Accepted,
}

fn call_body(call: CallView) -> ToolCallBody {
    ToolCallBody {
        call_id: call.call_id,
        name: call.name,
        arguments: call.arguments,
        approval: call.approval.into(),
        status: call.status.to_owned(),
        attempts: call.attempts,
        output: call.output,
        error: call.error.map(|failure| ToolCallError {
            code: failure.code,
            detail: failure.detail,
        }),
        decided_by: call.decided_by,
        reason: call.reason,
    }
}

fn step_body(step: StepView) -> StepBody {
    StepBody {
        step: step.step,
        model: step.model,
        status: step.status.to_owned(),
        content: step.content,
        prompt_tokens: step.prompt_tokens,
        completion_tokens: step.completion_tokens,
        credits: step.credits,
        latency_ms: step.latency_ms,
        finish_reason: step.finish_reason,
        retries: step.retries,
        tool_calls: step.tool_calls.into_iter().map(call_body).collect(),
    }
}

/// The answer for a run.
pub fn run_view(run: RunView) -> RunBody {
    let (prompt_tokens, completion_tokens, credits) = run.usage;
    RunBody {
        id: run.id,
        conversation_id: run.conversation_id,
        status: run.status.into(),
        input: run.input,
        output: run.output,
        error: run.error.map(|(code, detail)| RunErrorBody { code, detail }),
        steps: run.steps.into_iter().map(step_body).collect(),
        usage: UsageBody {
            prompt_tokens,
            completion_tokens,
            credits,
        },
        last_event_id: run.last_event_id,
    }
}

#[OpenApi(tag = "ApiTags::Runs")]
impl RunsApi {
    /// Get a run
    ///
    /// Its status, every step (model calls with their tool calls) and its usage. With `as_of`,
    /// the run as it stood at that time, folded from the events recorded until then (404 when
    /// it did not exist yet).
    #[oai(path = "/runs/:id", method = "get", operation_id = "getRun")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The run's id.
        id: Path<Uuid>,
        /// Answer as the run stood at this time (RFC 3339); now when absent.
        as_of: Query<Option<chrono::DateTime<chrono::Utc>>>,
    ) -> Result<Json<RunBody>, ApiError> {
        let view = match as_of.0 {
            Some(as_of) => state.runs.run_as_of(&auth.0, id.0, as_of).await?,
            None => state.runs.run(&auth.0, id.0).await?,
        };
        Ok(Json(run_view(view)))
    }

    /// List runs
    ///
    /// The organization's run history, newest first, a page at a time: each run with its
    /// status, steps and usage, from the run history view. Filter by `status` and
    /// `conversation_id`.
    #[oai(path = "/runs", method = "get", operation_id = "listOrganizationRuns")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Only runs in this status.
        status: Query<Option<RunStatusName>>,
        /// Only this conversation's runs.
        conversation_id: Query<Option<Uuid>>,
        /// Most runs in the page (1–100); 20 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        cursor: Query<Option<i64>>,
    ) -> Result<Json<RunList>, ApiError> {
        let status = status.0.map(RunStatus::from);
        let filter = RunFilter {
            conversation_id: conversation_id.0,
            status,
        };
        let page = state
            .runs
            .runs_where(&auth.0, &filter, limit.0.unwrap_or(20), cursor.0)
            .await?;
        Ok(Json(RunList {
            runs: page.runs.into_iter().map(run_view).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// List calls awaiting approval
    ///
    /// Every tool call in the organization waiting for a person's decision, newest first, a
    /// page at a time.
    #[oai(path = "/approvals", method = "get", operation_id = "listPendingApprovals")]
    async fn pending(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Most calls in the page (1–100); 20 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        cursor: Query<Option<i64>>,
    ) -> Result<Json<PendingApprovalList>, ApiError> {
        let page = state
            .runs
            .pending_approvals(&auth.0, limit.0.unwrap_or(20), cursor.0)
            .await?;
        Ok(Json(PendingApprovalList {
            approvals: page.approvals.into_iter().map(pending_body).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Cancel a run
    ///
    /// Whatever it waits for (the model, a tool, an approval); a run that already ended is 409
    /// `run_finished`. Owners, admins and members.
    #[oai(path = "/runs/:id/cancel", method = "post", operation_id = "cancelRun")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The run's id.
        id: Path<Uuid>,
    ) -> Result<Accepted, ApiError> {
        state.runs.cancel(&auth.0, id.0, request_id.for_events()).await?;
        Ok(Accepted::Accepted)
    }

    /// Approve a tool call
    ///
    /// The call must await approval in this run's current step; approving anything else (a
    /// decided call, another run's, a cancelled run's) is refused, never applied to something
    /// else. Owners, admins and members.
    #[oai(
        path = "/runs/:id/tool-calls/:call_id/approve",
        method = "post",
        operation_id = "approveToolCall"
    )]
    async fn approve(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The run's id.
        id: Path<Uuid>,
        /// The call's id (`call_id` in the run's steps).
        call_id: Path<Uuid>,
    ) -> Result<Accepted, ApiError> {
        state
            .runs
            .approve(&auth.0, id.0, call_id.0, request_id.for_events())
            .await?;
        Ok(Accepted::Accepted)
    }

    /// Deny a tool call
    ///
    /// The model is told the call was denied, with the reason. Same rules as approving.
    #[oai(
        path = "/runs/:id/tool-calls/:call_id/deny",
        method = "post",
        operation_id = "denyToolCall"
    )]
    async fn deny(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The run's id.
        id: Path<Uuid>,
        /// The call's id (`call_id` in the run's steps).
        call_id: Path<Uuid>,
        body: Json<DenyRequest>,
    ) -> Result<Accepted, ApiError> {
        let reason = body.0.reason.map(|reason| reason.0).unwrap_or_default();
        state
            .runs
            .deny(&auth.0, id.0, call_id.0, reason, request_id.for_events())
            .await?;
        Ok(Accepted::Accepted)
    }
}
