//! `/v1/agents`: an organization's agents, each a versioned definition.

use domain::agent::{AgentChange, AgentDefinition, Approval, DEFAULT_MAX_STEPS};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, ErrorCode, RequestId, Text, TextBlock, idempotency_key};

/// Agents of the caller's organization (everyone reads; auditors do not write).
pub struct AgentsApi;

/// Agents one list page holds when no `limit` is given.
const DEFAULT_PAGE: u32 = 20;

/// An agent to create. Every rule is checked before anything is recorded.
#[derive(Object)]
struct CreateAgentRequest {
    /// What the agent is called (1–100 characters, trimmed).
    #[oai(validator(min_length = 1, max_length = 100))]
    name: Text,
    /// The model that runs it (1–100 characters); `echo` is the built-in development model.
    #[oai(validator(min_length = 1, max_length = 100))]
    model: Text,
    /// Instructions given to the model first (at most 32 KiB; may span lines and hold tabs).
    /// Empty when absent.
    system_prompt: Option<TextBlock>,
    /// Names of the tools it may call (at most 32, each 1–64 of `a-zA-Z0-9_-`, each once).
    /// None when absent.
    tools: Option<Vec<Text>>,
    /// Which tool calls wait for a person's approval: `"never"`, `"always"`, or an object from
    /// tool name (one of `tools`) to `"never"` or `"always"`. `"never"` when absent.
    approval: Option<Value>,
    /// Most model steps one run may take (1–100); 10 when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    max_steps: Option<u32>,
    /// Sampling temperature (0–2); the model's default when absent.
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    temperature: Option<f64>,
    /// Most tokens one model answer may produce (1–32768); the model's default when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "32768")))]
    max_output_tokens: Option<u32>,
    /// Seconds a tool call may wait for approval (1–604800) before it is denied with reason
    /// `expired`; it waits as long as it takes when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
    approval_timeout_seconds: Option<u32>,
}

/// A partial update: each field given replaces the latest version's; the answer is a new
/// version, and earlier ones stay readable. At least one field.
#[derive(Object)]
struct UpdateAgentRequest {
    /// New name (1–100 characters, trimmed).
    #[oai(validator(min_length = 1, max_length = 100))]
    name: Option<Text>,
    /// New model (1–100 characters).
    #[oai(validator(min_length = 1, max_length = 100))]
    model: Option<Text>,
    /// New system prompt (at most 32 KiB; may span lines and hold tabs).
    system_prompt: Option<TextBlock>,
    /// New tool list, replacing the whole list (at most 32 names, each once).
    tools: Option<Vec<Text>>,
    /// New approval policy: `"never"`, `"always"`, or an object from tool name to either.
    approval: Option<Value>,
    /// New step limit (1–100).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    max_steps: Option<u32>,
    /// New temperature (0–2).
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    temperature: Option<f64>,
    /// New output token limit (1–32768).
    #[oai(validator(minimum(value = "1"), maximum(value = "32768")))]
    max_output_tokens: Option<u32>,
    /// New approval timeout in seconds (1–604800).
    #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
    approval_timeout_seconds: Option<u32>,
}

/// Which version a write recorded.
#[derive(Object)]
struct AgentVersionRef {
    /// The agent's id.
    id: Uuid,
    /// The version just recorded: 1 at creation, then one more per update.
    version: u32,
}

/// One version of an agent. Fields without a value are left out, never `null`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AgentView {
    /// The agent's id.
    id: Uuid,
    /// The version shown.
    version: u32,
    /// The agent's latest version (greater than `version` when an older one was asked for).
    latest_version: u32,
    /// What the agent is called.
    name: String,
    /// The model that runs it.
    model: String,
    /// Instructions given to the model first (may be empty).
    system_prompt: String,
    /// The tools it may call.
    tools: Vec<String>,
    /// `"never"`, `"always"`, or an object from tool name to either.
    approval: Value,
    /// Most model steps one run may take.
    max_steps: u32,
    /// Sampling temperature; absent for the model's default.
    temperature: Option<f64>,
    /// Most tokens one model answer may produce; absent for the model's default.
    max_output_tokens: Option<u32>,
    /// Seconds a tool call may wait for approval before it is denied (`expired`); absent when
    /// it waits as long as it takes.
    approval_timeout_seconds: Option<u32>,
}

/// One page of the organization's agents, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AgentList {
    /// The agents of this page, each at its latest version, newest first.
    agents: Vec<AgentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

#[derive(ApiResponse)]
enum AgentCreated {
    /// Created as version 1.
    #[oai(status = 201)]
    Created(Json<AgentVersionRef>),
}

fn view(agent: commands::agents::VersionedAgent) -> AgentView {
    let d = agent.definition;
    AgentView {
        id: agent.id,
        version: agent.version,
        latest_version: agent.latest_version,
        name: d.name,
        model: d.model,
        system_prompt: d.system_prompt,
        tools: d.tools,
        approval: serde_json::to_value(&d.approval).unwrap_or(Value::Null),
        max_steps: d.max_steps,
        temperature: d.temperature,
        max_output_tokens: d.max_output_tokens,
        approval_timeout_seconds: d.approval_timeout_seconds,
    }
}

/// The domain's approval policy from its JSON, or 422 `invalid_approval`.
fn approval(value: Value) -> Result<Approval, ApiError> {
    serde_json::from_value(value).map_err(|_| {
        ApiError::with_status(
            poem::http::StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidApproval,
            "approval must be \"never\", \"always\", or an object from tool name to one of them",
        )
    })
}

fn names(tools: Vec<Text>) -> Vec<String> {
    tools.into_iter().map(|tool| tool.0).collect()
}

#[OpenApi(tag = "ApiTags::Agents")]
impl AgentsApi {
    /// Create an agent
    ///
    /// In the caller's organization (owners, admins and members; auditors may not). Answers
    /// the id and version 1.
    ///
    /// With an `Idempotency-Key`, sending the same request again answers the agent the first
    /// one created, never a second one.
    #[oai(path = "/agents", method = "post", operation_id = "createAgent")]
    async fn create(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// A key of the client's choosing (1–255 visible ASCII characters) that makes the request
        /// safe to repeat: the same key with the same definition answers the agent it created,
        /// at version 1; with another definition, 422 `idempotency_key_reused`. Keys are the
        /// organization's, per operation, and never expire.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        key: Header<Option<String>>,
        body: Json<CreateAgentRequest>,
        request: &poem::Request,
    ) -> Result<AgentCreated, ApiError> {
        let key = idempotency_key(key.0.as_deref(), request)?;
        let body = body.0;
        let definition = AgentDefinition {
            name: body.name.0,
            model: body.model.0,
            system_prompt: body.system_prompt.map(|p| p.0).unwrap_or_default(),
            tools: body.tools.map(names).unwrap_or_default(),
            approval: body.approval.map(approval).transpose()?.unwrap_or_default(),
            max_steps: body.max_steps.unwrap_or(DEFAULT_MAX_STEPS),
            temperature: body.temperature,
            max_output_tokens: body.max_output_tokens,
            approval_timeout_seconds: body.approval_timeout_seconds,
        };
        let (id, version) = state
            .agents
            .create(&auth.0, definition, key.as_ref(), request_id.for_events())
            .await?;
        Ok(AgentCreated::Created(Json(AgentVersionRef { id, version })))
    }

    /// Get an agent
    ///
    /// Its latest version, or the version asked for. Another organization's agent is not
    /// found.
    #[oai(path = "/agents/:id", method = "get", operation_id = "getAgent")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The agent's id.
        id: Path<Uuid>,
        /// A version to show instead of the latest (1 is the definition at creation).
        version: Query<Option<u32>>,
    ) -> Result<Json<AgentView>, ApiError> {
        let agent = state.agents.get(&auth.0, id.0, version.0).await?;
        Ok(Json(view(agent)))
    }

    /// List agents
    ///
    /// The organization's agents at their latest versions, newest first, a page at a time.
    #[oai(path = "/agents", method = "get", operation_id = "listAgents")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Most agents in the page (1–100); 20 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        cursor: Query<Option<i64>>,
    ) -> Result<Json<AgentList>, ApiError> {
        let page = state
            .agents
            .list(&auth.0, limit.0.unwrap_or(DEFAULT_PAGE), cursor.0)
            .await?;
        Ok(Json(AgentList {
            agents: page.agents.into_iter().map(view).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Update an agent
    ///
    /// Records a new version from the latest with the given fields replaced (owners, admins and
    /// members). Earlier versions stay readable with `?version=`.
    #[oai(path = "/agents/:id", method = "patch", operation_id = "updateAgent")]
    async fn update(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The agent's id.
        id: Path<Uuid>,
        body: Json<UpdateAgentRequest>,
    ) -> Result<Json<AgentVersionRef>, ApiError> {
        let body = body.0;
        let change = AgentChange {
            name: body.name.map(|t| t.0),
            model: body.model.map(|t| t.0),
            system_prompt: body.system_prompt.map(|p| p.0),
            tools: body.tools.map(names),
            approval: body.approval.map(approval).transpose()?,
            max_steps: body.max_steps,
            temperature: body.temperature,
            max_output_tokens: body.max_output_tokens,
            approval_timeout_seconds: body.approval_timeout_seconds,
        };
        let version = state
            .agents
            .update(&auth.0, id.0, change, request_id.for_events())
            .await?;
        Ok(Json(AgentVersionRef { id: id.0, version }))
    }
}
