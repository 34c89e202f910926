//! `/v1/tools`: an organization's HTTP tools, each a versioned definition with a write-only
//! signing secret.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use commands::tools::ToolView as Tool;
use domain::tool::{DEFAULT_TIMEOUT_MS, ToolChange, ToolDefinition};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, Text, TextBlock};

/// Tools of the caller's organization (everyone reads; auditors do not write).
pub struct ToolsApi;

/// Tools one list page holds when no `limit` is given.
const DEFAULT_PAGE: u32 = 20;

/// What `Cache-Control` says on an answer that carries a secret.
const NO_STORE: &str = "no-store";

/// A tool to create. Every rule is checked before anything is recorded.
#[derive(Object)]
struct CreateToolRequest {
    /// What the model calls it: 1–64 of `A-Z a-z 0-9 _ -`, unique in the organization. It
    /// never changes.
    #[oai(validator(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    name: Text,
    /// What the tool does, for the model (1–1024 characters, trimmed; may span lines).
    #[oai(validator(min_length = 1, max_length = 1024))]
    description: TextBlock,
    /// A JSON Schema (any draft the validator knows; 2020-12 when `$schema` is absent) of the
    /// arguments: an object with `"type": "object"`, at most 16 KiB. Remote `$ref`s are not
    /// fetched.
    parameters: BTreeMap<String, Value>,
    /// Where the runtime POSTs the arguments: `http` or `https`, no user name or password, at
    /// most 2048 bytes.
    #[oai(validator(pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://", max_length = 2048))]
    url: Text,
    /// How long a call may take, in milliseconds (1000–60000); 10000 when absent.
    #[oai(validator(minimum(value = "1000"), maximum(value = "60000")))]
    timeout_ms: Option<u32>,
    /// The signing secret (16–256 characters of visible ASCII). Absent: 32 random bytes are
    /// generated. Either way the answer shows it this once; it is never shown again.
    #[oai(validator(pattern = r"^[!-~]{16,256}$"))]
    secret: Option<Text>,
}

/// A partial update: each field given replaces the latest version's; the answer is a new
/// version. At least one field besides `name`.
#[derive(Object)]
struct UpdateToolRequest {
    /// The tool's own name, if sent at all: a name never changes (another name is refused
    /// with `tool_name_immutable`).
    #[oai(validator(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    name: Option<Text>,
    /// New description (1–1024 characters, trimmed; may span lines).
    #[oai(validator(min_length = 1, max_length = 1024))]
    description: Option<TextBlock>,
    /// New argument schema (an object schema, at most 16 KiB).
    parameters: Option<BTreeMap<String, Value>>,
    /// New URL (`http` or `https`, at most 2048 bytes).
    #[oai(validator(pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://", max_length = 2048))]
    url: Option<Text>,
    /// New timeout, in milliseconds (1000–60000).
    #[oai(validator(minimum(value = "1000"), maximum(value = "60000")))]
    timeout_ms: Option<u32>,
}

/// A new signing secret. Send `{}` to have one generated.
#[derive(Object)]
struct RotateToolSecretRequest {
    /// The new secret (16–256 characters of visible ASCII). Absent: 32 random bytes are
    /// generated.
    #[oai(validator(pattern = r"^[!-~]{16,256}$"))]
    secret: Option<Text>,
}

/// The tool just created, with its signing secret shown this once.
#[derive(Object)]
struct CreatedToolResponse {
    /// The tool's id (derived from the organization and the name).
    id: Uuid,
    /// Its name.
    name: String,
    /// Its version: 1, or one more than the last version of a deleted tool of the same name.
    version: u32,
    /// The secret the runtime signs each call with: kept only sealed, never shown again.
    secret: String,
}

/// The new signing secret, shown this once.
#[derive(Object)]
struct RotatedSecretResponse {
    /// The secret the runtime signs each call with from now on; the old one no longer works.
    secret: String,
}

/// Which version a write recorded.
#[derive(Object)]
struct ToolVersionRef {
    /// The tool's id.
    id: Uuid,
    /// The version just recorded.
    version: u32,
}

/// A tool at its latest version. The secret is never shown.
#[derive(Object)]
struct ToolView {
    /// The tool's id.
    id: Uuid,
    /// The latest version.
    version: u32,
    /// What the model calls it.
    name: String,
    /// What the tool does, for the model.
    description: String,
    /// The JSON Schema of the arguments.
    parameters: BTreeMap<String, Value>,
    /// Where the runtime POSTs the arguments (normalized: `HTTPS://Example.COM` reads
    /// `https://example.com/`).
    url: String,
    /// How long a call may take, in milliseconds.
    timeout_ms: u32,
    /// Always `true`: every tool has a signing secret, which only its creation or rotation
    /// answer shows.
    has_secret: bool,
    /// When the current secret was set: at creation, or by the latest rotation.
    secret_rotated_at: DateTime<Utc>,
}

/// One page of the organization's tools, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ToolList {
    /// The tools of this page, each at its latest version, newest first.
    tools: Vec<ToolView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

#[derive(ApiResponse)]
enum ToolCreated {
    /// Created; the answer carries the secret this once.
    #[oai(status = 201)]
    Created(
        Json<CreatedToolResponse>,
        /// `no-store`: the answer carries a secret.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
enum SecretRotated {
    /// Rotated; the answer carries the new secret this once.
    #[oai(status = 200)]
    Rotated(
        Json<RotatedSecretResponse>,
        /// `no-store`: the answer carries a secret.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
enum ToolDeleted {
    /// Deleted: not found from now on, and its name may be used again.
    #[oai(status = 204)]
    Deleted,
}

fn view(tool: Tool) -> ToolView {
    let d = tool.definition;
    ToolView {
        id: tool.id,
        version: tool.version,
        name: d.name,
        description: d.description,
        parameters: object(d.parameters),
        url: d.url,
        timeout_ms: d.timeout_ms,
        has_secret: true,
        secret_rotated_at: tool.secret_rotated_at,
    }
}

/// A stored schema (always an object) as the document's object type.
fn object(value: Value) -> BTreeMap<String, Value> {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

fn secret(text: Option<Text>) -> Option<SecretString> {
    text.map(|text| SecretString::from(text.0))
}

#[OpenApi(tag = "ApiTags::Tools")]
impl ToolsApi {
    /// Create a tool
    ///
    /// An HTTP tool of the caller's organization (owners, admins and members; auditors may
    /// not). Answers its id, version and signing secret: given, or generated when absent, and
    /// shown this once. A name the organization already uses is refused (`tool_exists`).
    #[oai(path = "/tools", method = "post", operation_id = "createTool")]
    async fn create(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        body: Json<CreateToolRequest>,
    ) -> Result<ToolCreated, ApiError> {
        let body = body.0;
        let definition = ToolDefinition {
            name: body.name.0,
            description: body.description.0,
            parameters: Value::Object(body.parameters.into_iter().collect()),
            url: body.url.0,
            timeout_ms: body.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        };
        let created = state
            .tools
            .create(&auth.0, definition, secret(body.secret), request_id.for_events())
            .await?;
        let response = CreatedToolResponse {
            id: created.id,
            name: created.name,
            version: created.version,
            secret: created.secret.expose_secret().to_owned(),
        };
        Ok(ToolCreated::Created(Json(response), NO_STORE.to_owned()))
    }

    /// Get a tool
    ///
    /// Its latest version, without its secret. Another organization's tool, or a deleted one,
    /// is not found.
    #[oai(path = "/tools/:id", method = "get", operation_id = "getTool")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The tool's id.
        id: Path<Uuid>,
    ) -> Result<Json<ToolView>, ApiError> {
        let tool = state.tools.get(&auth.0, id.0).await?;
        Ok(Json(view(tool)))
    }

    /// List tools
    ///
    /// The organization's tools at their latest versions, newest first, a page at a time;
    /// never their secrets.
    #[oai(path = "/tools", method = "get", operation_id = "listTools")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Most tools in the page (1–100); 20 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        cursor: Query<Option<i64>>,
    ) -> Result<Json<ToolList>, ApiError> {
        let page = state
            .tools
            .list(&auth.0, limit.0.unwrap_or(DEFAULT_PAGE), cursor.0)
            .await?;
        Ok(Json(ToolList {
            tools: page.tools.into_iter().map(view).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Update a tool
    ///
    /// Records a new version from the latest with the given fields replaced (owners, admins and
    /// members). The name never changes; the secret changes only by rotation.
    #[oai(path = "/tools/:id", method = "patch", operation_id = "updateTool")]
    async fn update(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The tool's id.
        id: Path<Uuid>,
        body: Json<UpdateToolRequest>,
    ) -> Result<Json<ToolVersionRef>, ApiError> {
        let body = body.0;
        let change = ToolChange {
            name: body.name.map(|t| t.0),
            description: body.description.map(|t| t.0),
            parameters: body.parameters.map(|p| Value::Object(p.into_iter().collect())),
            url: body.url.map(|t| t.0),
            timeout_ms: body.timeout_ms,
        };
        let version = state
            .tools
            .update(&auth.0, id.0, change, request_id.for_events())
            .await?;
        Ok(Json(ToolVersionRef { id: id.0, version }))
    }

    /// Rotate a tool's secret
    ///
    /// Replaces the signing secret with the one given, or a generated one when absent (owners,
    /// admins and members). The answer shows it this once; the old secret stops at once.
    #[oai(
        path = "/tools/:id/secret",
        method = "post",
        operation_id = "rotateToolSecret"
    )]
    async fn rotate_secret(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The tool's id.
        id: Path<Uuid>,
        body: Json<RotateToolSecretRequest>,
    ) -> Result<SecretRotated, ApiError> {
        let rotated = state
            .tools
            .rotate_secret(&auth.0, id.0, secret(body.0.secret), request_id.for_events())
            .await?;
        let response = RotatedSecretResponse {
            secret: rotated.expose_secret().to_owned(),
        };
        Ok(SecretRotated::Rotated(Json(response), NO_STORE.to_owned()))
    }

    /// Delete a tool
    ///
    /// Owners, admins and members. The tool is not found afterwards and agents naming it see
    /// no such tool; its name may be used for a new tool, which keeps the same id and goes on
    /// counting versions.
    #[oai(path = "/tools/:id", method = "delete", operation_id = "deleteTool")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The tool's id.
        id: Path<Uuid>,
    ) -> Result<ToolDeleted, ApiError> {
        state.tools.delete(&auth.0, id.0, request_id.for_events()).await?;
        Ok(ToolDeleted::Deleted)
    }
}
