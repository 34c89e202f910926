//! `/v1/conversations`: conversations with an agent, and starting runs in them.

use chrono::{DateTime, Utc};
use commands::runs::{ConversationSummary, ConversationView, TranscriptMessage};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::runs::{RunList, RunStatusName, run_view};
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, Text, TextBlock, WriteBearerAuth, idempotency_key};

/// Conversations of the caller's organization (everyone reads; auditors do not write).
pub struct ConversationsApi;

/// Items one list page holds when no `limit` is given.
const DEFAULT_PAGE: u32 = 20;

/// A conversation to start.
#[derive(Object)]
struct CreateConversationRequest {
    /// The agent to talk to; the conversation keeps the agent's current version for every run.
    agent_id: Uuid,
    /// A label (at most 200 characters, trimmed; blank means none).
    #[oai(validator(max_length = 200))]
    title: Option<Text>,
}

/// A conversation just started.
#[derive(Object)]
struct ConversationCreated {
    /// Its id.
    id: Uuid,
    /// The agent version its runs use.
    agent_version: u32,
}

/// A run to start.
#[derive(Object)]
struct CreateRunRequest {
    /// What the user says (1 byte to 32 KiB; may span lines and hold tabs).
    #[oai(validator(min_length = 1, max_length = 32768))]
    input: TextBlock,
}

/// A run just queued.
#[derive(Object)]
struct RunQueued {
    /// The run's id.
    run_id: Uuid,
    /// `queued`: an executor takes it within moments.
    status: RunStatusName,
}

/// A tool call as a message shows it.
#[derive(Object)]
struct MessageToolCall {
    /// Agentry's id for the call (approve or deny it by this id).
    call_id: Uuid,
    /// The tool.
    name: String,
    /// The arguments as the model wrote them (JSON text).
    arguments: String,
}

/// One message of a conversation. Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MessageView {
    /// `user`, `assistant` or `tool`.
    role: String,
    /// The text: the user's input, the model's answer, or a tool's output (or error, or
    /// denial).
    content: String,
    /// The assistant's tool calls; absent when it made none.
    tool_calls: Option<Vec<MessageToolCall>>,
    /// For a tool message: the call it answers.
    call_id: Option<Uuid>,
    /// The run the message belongs to.
    run_id: Uuid,
}

/// A conversation and every message in it, oldest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ConversationBody {
    /// Its id.
    id: Uuid,
    /// The agent.
    agent_id: Uuid,
    /// The agent version every run uses.
    agent_version: u32,
    /// Its label; absent when none.
    title: Option<String>,
    /// Whether it takes no new runs.
    archived: bool,
    /// The run not yet ended; absent when none.
    active_run: Option<Uuid>,
    /// Every message, oldest first.
    messages: Vec<MessageView>,
}

/// A conversation as listed.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ConversationItem {
    /// Its id.
    id: Uuid,
    /// The agent.
    agent_id: Uuid,
    /// The agent version every run uses.
    agent_version: u32,
    /// Its label; absent when none.
    title: Option<String>,
    /// Whether it takes no new runs.
    archived: bool,
    /// The run not yet ended; absent when none.
    active_run: Option<Uuid>,
    /// How many runs it has had.
    runs: u64,
}

/// One page of conversations, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ConversationList {
    /// This page.
    conversations: Vec<ConversationItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

#[derive(ApiResponse)]
enum ConversationCreatedResponse {
    /// Started.
    #[oai(status = 201)]
    Created(Json<ConversationCreated>),
}

#[derive(ApiResponse)]
enum RunAccepted {
    /// Queued; read it with `GET /v1/runs/{run_id}` or stream it.
    #[oai(status = 202)]
    Accepted(Json<RunQueued>),
}

#[derive(ApiResponse)]
enum Archived {
    /// Archived (or already was).
    #[oai(status = 204)]
    Done,
}

fn message(message: TranscriptMessage) -> MessageView {
    let tool_calls = (!message.tool_calls.is_empty()).then(|| {
        message
            .tool_calls
            .into_iter()
            .map(|call| MessageToolCall {
                call_id: call.call_id,
                name: call.name,
                arguments: call.arguments,
            })
            .collect()
    });
    MessageView {
        role: message.role.as_str().to_owned(),
        content: message.content,
        tool_calls,
        call_id: message.call.map(|call| call.call_id),
        run_id: message.run_id,
    }
}

fn body(view: ConversationView) -> ConversationBody {
    ConversationBody {
        id: view.id,
        agent_id: view.agent_id,
        agent_version: view.agent_version,
        title: view.title,
        archived: view.archived,
        active_run: view.active_run,
        messages: view.messages.into_iter().map(message).collect(),
    }
}

fn item(summary: ConversationSummary) -> ConversationItem {
    ConversationItem {
        id: summary.id,
        agent_id: summary.agent_id,
        agent_version: summary.agent_version,
        title: summary.title,
        archived: summary.archived,
        active_run: summary.active_run,
        runs: summary.runs as u64,
    }
}

#[OpenApi(tag = "ApiTags::Conversations")]
impl ConversationsApi {
    /// Start a conversation
    ///
    /// With an agent of the caller's organization (owners, admins and members), pinned at the
    /// agent's current version: later updates of the agent do not change it.
    ///
    /// With an `Idempotency-Key`, sending the same request again (after a lost answer, or a 500
    /// `outcome_unknown`) answers the conversation the first one created, never a second one.
    #[oai(path = "/conversations", method = "post", operation_id = "createConversation")]
    async fn create(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: WriteBearerAuth,
        /// A key of the client's choosing (1–255 visible ASCII characters) that makes the request
        /// safe to repeat: the same key with the same body answers the conversation it created;
        /// with another body, 422 `idempotency_key_reused`. Keys are the organization's, per
        /// operation, and never expire.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        key: Header<Option<String>>,
        body: Json<CreateConversationRequest>,
        request: &poem::Request,
    ) -> Result<ConversationCreatedResponse, ApiError> {
        let body = body.0;
        let key = idempotency_key(key.0.as_deref(), request)?;
        let (id, agent_version) = state
            .runs
            .create_conversation(
                &state.identity,
                auth.0,
                body.agent_id,
                body.title.map(|t| t.0),
                key.as_ref(),
                request_id.for_events(),
            )
            .await?;
        Ok(ConversationCreatedResponse::Created(Json(ConversationCreated {
            id,
            agent_version,
        })))
    }

    /// Get a conversation
    ///
    /// Every message, oldest first: each run's input, the agent's answers with their tool
    /// calls, and the tools' results. With `as_of`, the conversation as it stood at that time,
    /// folded from the events recorded until then (404 when it did not exist yet).
    #[oai(path = "/conversations/:id", method = "get", operation_id = "getConversation")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<Uuid>,
        /// Answer as the conversation stood at this time (RFC 3339); now when absent.
        as_of: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<ConversationBody>, ApiError> {
        let view = match as_of.0 {
            Some(as_of) => state.runs.conversation_as_of(&auth.0, id.0, as_of).await?,
            None => state.runs.conversation(&auth.0, id.0).await?,
        };
        Ok(Json(body(view)))
    }

    /// List conversations
    ///
    /// The organization's conversations, newest first, a page at a time.
    #[oai(path = "/conversations", method = "get", operation_id = "listConversations")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Most conversations in the page (1–100); 20 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        cursor: Query<Option<i64>>,
    ) -> Result<Json<ConversationList>, ApiError> {
        let page = state
            .runs
            .conversations(&auth.0, limit.0.unwrap_or(DEFAULT_PAGE), cursor.0)
            .await?;
        Ok(Json(ConversationList {
            conversations: page.conversations.into_iter().map(item).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Archive a conversation
    ///
    /// It stays readable and takes no new runs (owners, admins and members).
    #[oai(
        path = "/conversations/:id/archive",
        method = "post",
        operation_id = "archiveConversation"
    )]
    async fn archive(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<Uuid>,
    ) -> Result<Archived, ApiError> {
        state
            .runs
            .archive_conversation(&auth.0, id.0, request_id.for_events())
            .await?;
        Ok(Archived::Done)
    }

    /// Start a run
    ///
    /// The agent answers `input` in the background: this answers at once with the queued run.
    /// One run per conversation at a time: while another is active, 409 `run_active` names it
    /// in `run_id`. Owners, admins and members.
    ///
    /// With an `Idempotency-Key`, sending the same request again answers the run the first one
    /// started, with its status now, and starts no other.
    #[oai(path = "/conversations/:id/runs", method = "post", operation_id = "createRun")]
    // Each argument is one documented part of the request (poem-openapi's extractors).
    #[allow(clippy::too_many_arguments)]
    async fn create_run(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<Uuid>,
        /// A key of the client's choosing (1–255 visible ASCII characters) that makes the request
        /// safe to repeat: the same key with the same input in the same conversation answers
        /// the run it started (whatever its status now) and starts none; with another input,
        /// 422 `idempotency_key_reused`. Keys are the organization's, per conversation, and
        /// never expire.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        key: Header<Option<String>>,
        body: Json<CreateRunRequest>,
        request: &poem::Request,
    ) -> Result<RunAccepted, ApiError> {
        let key = idempotency_key(key.0.as_deref(), request)?;
        let (run_id, status) = state
            .runs
            .start_run(
                &auth.0,
                id.0,
                body.0.input.0,
                key.as_ref(),
                request_id.for_events(),
            )
            .await?;
        Ok(RunAccepted::Accepted(Json(RunQueued {
            run_id,
            status: status.into(),
        })))
    }

    /// List a conversation's runs
    ///
    /// Newest first, a page at a time, each with its steps.
    #[oai(path = "/conversations/:id/runs", method = "get", operation_id = "listRuns")]
    async fn list_runs(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<Uuid>,
        /// Most runs in the page (1–100); 20 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
    ) -> Result<Json<RunList>, ApiError> {
        let page = state
            .runs
            .conversation_runs(&auth.0, id.0, limit.0.unwrap_or(DEFAULT_PAGE), cursor.0)
            .await?;
        Ok(Json(RunList {
            runs: page.runs.into_iter().map(run_view).collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
