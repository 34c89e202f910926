//! Requests sent again with their `Idempotency-Key`: a conversation or a run created once, and
//! the same answer (the id, and the run's status as it stands now) to every repeat.
//!
//! The key is drawn into the id of what the request creates (`domain::idempotency`), so the
//! aggregate is the record of the key. A conversation's repeat finds the conversation; two
//! racing meet on it, one creating it, the other told it exists and answered from it. A run's
//! repeat finds the run's id among the conversation's runs, which refuses to start a run id
//! twice; two racing meet on the conversation the same way. A repeat is checked before the
//! plan's limits and the credits, and again if one of them refused it (it may have counted the
//! racing start's run). A key sent with another request (another agent or title, another
//! input) is refused, never answered with the first request's result.

use domain::idempotency::IdempotencyKey;
use domain::run::{RunEvent, RunStatus};
use uuid::Uuid;

use super::{RunService, RunsError};
use crate::identity::IdentityError;

/// The id of the conversation a `POST /v1/conversations` with `key` creates in `org_id`.
pub(super) fn conversation_id(key: &IdempotencyKey, org_id: Uuid) -> Uuid {
    key.id_for(org_id, "conversation", Uuid::nil())
}

/// The id of the run a `POST /v1/conversations/{id}/runs` with `key` starts in the
/// conversation: the same key in another conversation starts another run.
pub(super) fn run_id(key: &IdempotencyKey, org_id: Uuid, conversation_id: Uuid) -> Uuid {
    key.id_for(org_id, "run", conversation_id)
}

impl RunService {
    /// The answer to a conversation's creation sent again: the conversation `id` the key names
    /// exists (this organization's: the id holds it), created with this agent and title, or
    /// the key was used for another request.
    pub(super) async fn repeated_conversation(
        &self,
        org_id: Uuid,
        id: Uuid,
        agent_id: Uuid,
        title: Option<&str>,
    ) -> Result<(Uuid, u32), RunsError> {
        let conversation = self.conversation_in_org(org_id, id).await?;
        if !conversation.created_with(agent_id, title) {
            return Err(IdentityError::IdempotencyKeyReused("agent or title").into());
        }
        Ok((id, conversation.agent_version()))
    }

    /// Whether the conversation (of the caller's organization, else 404) has started `run_id`:
    /// recorded or not, the run's start happened, and a start with its key is a repeat.
    pub(super) async fn started_before(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        run_id: Uuid,
    ) -> Result<bool, RunsError> {
        let conversation = self.conversation_in_org(org_id, conversation_id).await?;
        Ok(conversation.runs().contains(&run_id))
    }

    /// The answer to a start sent again whose run the conversation has started: the run's id
    /// and status now. A start interrupted between claiming the conversation and recording the
    /// run (or one with the same key recording it at this moment) is finished here: the run is
    /// recorded and handed to an executor, as that start would have.
    pub(super) async fn repeated_start(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        run_id: Uuid,
        input: &str,
    ) -> Result<(Uuid, RunStatus), RunsError> {
        if let Some(repeated) = self.repeated_run(org_id, conversation_id, run_id, input).await? {
            return Ok(repeated);
        }
        let recorded = self.record_claimed_run(org_id, conversation_id, run_id).await?;
        if recorded.is_some_and(|first_input| first_input != input) {
            return Err(IdentityError::IdempotencyKeyReused("input").into());
        }
        // Recorded here, or (no longer the active claim) by the racing start since the read above.
        self.repeated_run(org_id, conversation_id, run_id, input)
            .await?
            .ok_or_else(|| IdentityError::Internal(format!("run {run_id} started and never recorded")).into())
    }

    /// The recorded run `run_id` as a repeated start answers it: its id and status now, or
    /// `None` when it is not recorded. The key with another input is refused.
    async fn repeated_run(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        run_id: Uuid,
        input: &str,
    ) -> Result<Option<(Uuid, RunStatus)>, RunsError> {
        let (run, events) = self.run_with_events(run_id).await?;
        if !run.exists() {
            return Ok(None);
        }
        if run.org_id() != Some(org_id) || run.conversation_id() != conversation_id {
            // The id holds the organization and the conversation: no other's run can have it.
            return Err(
                IdentityError::Internal(format!("run {run_id} drawn from a key is another's")).into(),
            );
        }
        let first_input = events.iter().find_map(|event| match event {
            RunEvent::Queued { input, .. } => Some(input.as_str()),
            _ => None,
        });
        if first_input != Some(input) {
            return Err(IdentityError::IdempotencyKeyReused("input").into());
        }
        Ok(Some((run_id, run.status())))
    }
}
