//! The agents application service.

use domain::Role;
use domain::agent::{Agent, AgentChange, AgentCommand, AgentDefinition, AgentError};
use domain::idempotency::IdempotencyKey;
use eventstore::RequestOrigin;
use eventstore::{CommandBus, CommandError, EventStore};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AgentsError, ModelCatalog};
use crate::identity::{Caller, IdentityError};

/// One version of an agent.
#[derive(Clone, Debug)]
pub struct VersionedAgent {
    /// The agent's id.
    pub id: Uuid,
    /// The version shown.
    pub version: u32,
    /// The latest version (equal to `version` unless an older one was asked for).
    pub latest_version: u32,
    /// That version's definition.
    pub definition: AgentDefinition,
}

/// An agent as listed: its latest version.
pub type AgentSummary = VersionedAgent;

/// One page of an organization's agents, newest first.
#[derive(Clone, Debug)]
pub struct AgentPage {
    /// The agents of this page.
    pub agents: Vec<AgentSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Agents' application service: one per process, shared by every route.
pub struct AgentService {
    pool: PgPool,
    agents: CommandBus<Agent>,
    models: ModelCatalog,
}

impl AgentService {
    /// A service over `store`.
    pub fn new(store: &EventStore) -> Self {
        Self {
            pool: store.pool().clone(),
            agents: CommandBus::new(store.clone(), ()),
            models: ModelCatalog::echo_only(),
        }
    }

    /// Refuses model names outside `models` (only `echo` by default).
    pub fn with_models(mut self, models: ModelCatalog) -> Self {
        self.models = models;
        self
    }

    fn check_model(&self, model: Option<&str>) -> Result<(), AgentsError> {
        match model {
            Some(model) if !model.trim().is_empty() && !self.models.offers(model) => {
                Err(AgentsError::UnknownModel {
                    model: model.trim().to_owned(),
                    offered: self.models.listed().to_vec(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Creates an agent in the caller's organization (everyone but auditors); answers its id
    /// and version (1).
    ///
    /// With the client's idempotency `key`, the agent's id is drawn from it (as a
    /// conversation's is, `commands/src/runs/repeated.rs`): sent again with the same
    /// definition, the request answers the agent the first one created, at version 1.
    pub async fn create(
        &self,
        caller: &Caller,
        definition: AgentDefinition,
        key: Option<&IdempotencyKey>,
        origin: Option<RequestOrigin>,
    ) -> Result<(Uuid, u32), AgentsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "create agents")?;
        self.check_model(Some(&definition.model))?;
        let id = key.map_or_else(Uuid::now_v7, |key| key.id_for(org_id, "agent", Uuid::nil()));
        let create = AgentCommand::CreateAgent {
            org_id,
            definition: definition.clone(),
        };
        match self
            .agents
            .create(&id.to_string(), create, &caller.context(origin))
            .await
        {
            Ok(created) => Ok((id, created.state.version())),
            // Only an id drawn from a key can exist already: the key sent again.
            Err(CommandError::Rejected(AgentError::AlreadyExists)) if key.is_some() => {
                let agent = self.agents.load(&id.to_string()).await?;
                if agent.org_id() != Some(org_id) || !agent.created_with(&definition) {
                    return Err(IdentityError::IdempotencyKeyReused("agent definition").into());
                }
                Ok((id, 1))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Records a new version of an agent of the caller's organization with `change` applied
    /// (everyone but auditors); answers the new version.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        change: AgentChange,
        origin: Option<RequestOrigin>,
    ) -> Result<u32, AgentsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "update agents")?;
        // Tenancy first, so another organization's agent is not found, whatever the change.
        self.load_in_org(org_id, id).await?;
        self.check_model(change.model.as_deref())?;
        let update = AgentCommand::UpdateAgent { change };
        let updated = self
            .agents
            .execute(&id.to_string(), update, &caller.context(origin))
            .await?;
        Ok(updated.state.version())
    }

    /// An agent of the caller's organization at `version`, or at its latest version. Read from
    /// the write model, so an agent is readable the moment its creation is answered.
    pub async fn get(
        &self,
        caller: &Caller,
        id: Uuid,
        version: Option<u32>,
    ) -> Result<VersionedAgent, AgentsError> {
        let org_id = caller.org()?;
        let agent = self.load_in_org(org_id, id).await?;
        let latest_version = agent.version();
        let version = version.unwrap_or(latest_version);
        Ok(VersionedAgent {
            id,
            version,
            latest_version,
            definition: agent.at_version(version)?.clone(),
        })
    }

    /// The caller's organization's agents, newest first, `limit` (1 to [`MAX_PAGE`](crate::pages::MAX_PAGE)) at a time
    /// from `cursor` (a previous page's `next_cursor`).
    ///
    /// Found through the event log's `agent.created` events (indexed by organization), each
    /// agent then loaded from the write model: no read model to lag behind a creation.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<AgentPage, AgentsError> {
        let page = crate::pages::newest_first(
            &self.pool,
            "SELECT aggregate_id, position FROM events
             WHERE org_id = $1 AND aggregate_type = 'agent' AND sequence = 1
               AND position < COALESCE($2, 9223372036854775807)
             ORDER BY position DESC LIMIT $3",
            caller.org()?,
            limit,
            cursor,
        )
        .await?;
        let mut agents = Vec::with_capacity(page.ids.len());
        for id in page.ids {
            agents.push(self.get(caller, id, None).await?);
        }
        let next_cursor = page.next_cursor;
        Ok(AgentPage { agents, next_cursor })
    }

    /// The agent when it belongs to `org_id`; not found otherwise, so other organizations'
    /// agents cannot even be detected.
    async fn load_in_org(&self, org_id: Uuid, id: Uuid) -> Result<Agent, AgentsError> {
        let agent = self.agents.load(&id.to_string()).await?;
        if agent.org_id() != Some(org_id) {
            return Err(AgentError::NotFound.into());
        }
        Ok(agent)
    }
}
