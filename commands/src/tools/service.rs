//! The tools application service.

use eventstore::RequestOrigin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::Role;
use domain::tool::{Tool, ToolChange, ToolCommand, ToolDefinition, ToolError, tool_id};
use eventstore::{CommandBus, EventStore};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use super::{ToolsError, schema, secret};
use crate::identity::Caller;
use crate::secret_box::SecretBox;

/// A tool just created: the only answer that carries its generated (or given) secret.
#[derive(Debug)]
pub struct CreatedTool {
    /// The tool's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its version: 1, or more for a name created again after a deletion.
    pub version: u32,
    /// The signing secret, in clear this once.
    pub secret: SecretString,
}

/// A tool as read: its latest definition, never its secret.
#[derive(Clone, Debug)]
pub struct ToolView {
    /// The tool's id.
    pub id: Uuid,
    /// The latest version.
    pub version: u32,
    /// That version's definition.
    pub definition: ToolDefinition,
    /// When the current secret was set: at creation, or by the latest rotation.
    pub secret_rotated_at: DateTime<Utc>,
}

/// One page of an organization's tools, newest first.
#[derive(Clone, Debug)]
pub struct ToolPage {
    /// The tools of this page.
    pub tools: Vec<ToolView>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Tools' application service: one per process, shared by every route and the runtime.
pub struct ToolService {
    pool: PgPool,
    pub(super) tools: CommandBus<Tool>,
    pub(super) sealer: Arc<SecretBox>,
}

impl ToolService {
    /// A service over `store`, sealing secrets with `sealer`.
    pub fn new(store: &EventStore, sealer: Arc<SecretBox>) -> Self {
        Self {
            pool: store.pool().clone(),
            tools: CommandBus::new(store.clone(), ()),
            sealer,
        }
    }

    /// Creates a tool in the caller's organization (everyone but auditors), with `secret` or a
    /// generated one, which the answer carries this once.
    pub async fn create(
        &self,
        caller: &Caller,
        definition: ToolDefinition,
        secret: Option<SecretString>,
        origin: Option<RequestOrigin>,
    ) -> Result<CreatedTool, ToolsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "create tools")?;
        schema::check(&definition.parameters)?;
        let secret = secret::given_or_generated(secret)?;
        let name = definition.name.clone();
        let id = tool_id(org_id, &name);
        let sealed = secret::seal(&self.sealer, org_id, id, &name, &secret)?;
        let create = ToolCommand::CreateTool {
            org_id,
            definition,
            secret: sealed,
            at: Utc::now(),
        };
        let created = self
            .tools
            .execute(&id.to_string(), create, &caller.context(origin))
            .await?;
        Ok(CreatedTool {
            id,
            name,
            version: created.state.version(),
            secret,
        })
    }

    /// Records a new version of a tool of the caller's organization with `change` applied
    /// (everyone but auditors); answers the new version.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        change: ToolChange,
        origin: Option<RequestOrigin>,
    ) -> Result<u32, ToolsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "update tools")?;
        // Tenancy first, so another organization's tool is not found, whatever the change.
        self.load_in_org(org_id, id).await?;
        if let Some(parameters) = &change.parameters {
            schema::check(parameters)?;
        }
        let update = ToolCommand::UpdateTool { change };
        let updated = self
            .tools
            .execute(&id.to_string(), update, &caller.context(origin))
            .await?;
        Ok(updated.state.version())
    }

    /// Replaces the signing secret of a tool of the caller's organization with `secret` or a
    /// generated one (everyone but auditors); the old one stops at once. Answers the new one,
    /// this once.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: Uuid,
        secret: Option<SecretString>,
        origin: Option<RequestOrigin>,
    ) -> Result<SecretString, ToolsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "rotate tool secrets")?;
        let tool = self.load_in_org(org_id, id).await?;
        let secret = secret::given_or_generated(secret)?;
        let name = tool.latest().map(|d| d.name.clone()).unwrap_or_default();
        let sealed = secret::seal(&self.sealer, org_id, id, &name, &secret)?;
        let rotate = ToolCommand::RotateSecret {
            secret: sealed,
            at: Utc::now(),
        };
        self.tools
            .execute(&id.to_string(), rotate, &caller.context(origin))
            .await?;
        Ok(secret)
    }

    /// Deletes a tool of the caller's organization (everyone but auditors). Its name may be
    /// used again; the new tool has the same id and goes on counting versions.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), ToolsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "delete tools")?;
        self.load_in_org(org_id, id).await?;
        self.tools
            .execute(&id.to_string(), ToolCommand::DeleteTool, &caller.context(origin))
            .await?;
        Ok(())
    }

    /// A tool of the caller's organization at its latest version. Read from the write model,
    /// so a tool is readable the moment its creation is answered.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<ToolView, ToolsError> {
        let org_id = caller.org()?;
        let tool = self.load_in_org(org_id, id).await?;
        view(id, &tool).ok_or(ToolsError::Tool(ToolError::NotFound))
    }

    /// The caller's organization's tools, newest first (by their latest creation), `limit`
    /// (1 to [`MAX_PAGE`](crate::pages::MAX_PAGE)) at a time from `cursor` (a previous page's `next_cursor`).
    ///
    /// Found through the event log's `tool.created` events not followed by a `tool.deleted`,
    /// each tool then loaded from the write model: no read model to lag behind a creation.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<ToolPage, ToolsError> {
        let page = crate::pages::newest_first(
            &self.pool,
            "SELECT c.aggregate_id, c.position FROM events c
             WHERE c.org_id = $1 AND c.aggregate_type = 'tool' AND c.event_type = 'tool.created'
               AND c.position < COALESCE($2, 9223372036854775807)
               AND NOT EXISTS (
                   SELECT 1 FROM events d
                   WHERE d.aggregate_type = 'tool' AND d.aggregate_id = c.aggregate_id
                     AND d.sequence > c.sequence AND d.event_type = 'tool.deleted')
             ORDER BY c.position DESC LIMIT $3",
            caller.org()?,
            limit,
            cursor,
        )
        .await?;
        let next_cursor = page.next_cursor;
        let mut tools = Vec::with_capacity(page.ids.len());
        for id in page.ids {
            // Deleted between the query and the load: left out, as it would be a moment later.
            match self.get(caller, id).await {
                Ok(tool) => tools.push(tool),
                Err(ToolsError::Tool(ToolError::NotFound)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(ToolPage { tools, next_cursor })
    }

    /// The tool when it exists in `org_id`; not found otherwise, so other organizations'
    /// tools cannot even be detected.
    async fn load_in_org(&self, org_id: Uuid, id: Uuid) -> Result<Tool, ToolsError> {
        let tool = self.tools.load(&id.to_string()).await?;
        if tool.org_id() != Some(org_id) || !tool.exists() {
            return Err(ToolError::NotFound.into());
        }
        Ok(tool)
    }
}

fn view(id: Uuid, tool: &Tool) -> Option<ToolView> {
    Some(ToolView {
        id,
        version: tool.version(),
        definition: tool.latest()?.clone(),
        secret_rotated_at: tool.secret_rotated_at()?,
    })
}
