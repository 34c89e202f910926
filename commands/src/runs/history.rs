//! Conversations and runs as they stood at a past moment (`?as_of=`): folded from the events
//! recorded up to then, never from today's state, so what an auditor reads is what the people
//! involved saw at that moment.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::conversation::{Conversation, ConversationError};
use domain::run::{Run, RunError, RunEvent};
use uuid::Uuid;

use super::service::{conversation_view, run_view};
use super::{ConversationView, RunService, RunView, RunsError, transcript_of};
use crate::identity::Caller;

impl RunService {
    /// The conversation and its messages as they stood at `as_of`. Not found when it did not
    /// exist yet then, or is another organization's.
    pub async fn conversation_as_of(
        &self,
        caller: &Caller,
        id: Uuid,
        as_of: DateTime<Utc>,
    ) -> Result<ConversationView, RunsError> {
        let org_id = caller.org()?;
        let events = self
            .store
            .load_until::<Conversation>(&id.to_string(), as_of)
            .await?;
        let conversation: Conversation = fold(events.into_iter().map(|(_, event)| event));
        if conversation.org_id() != Some(org_id) {
            return Err(ConversationError::NotFound.into());
        }
        let mut messages = Vec::new();
        for run_id in conversation.runs() {
            let events = self.run_events_until(*run_id, as_of).await?;
            messages.extend(transcript_of(*run_id, &events));
        }
        Ok(conversation_view(id, &conversation, messages))
    }

    /// The run, its steps and usage as they stood at `as_of`. Not found when it did not exist
    /// yet then, or is another organization's.
    pub async fn run_as_of(
        &self,
        caller: &Caller,
        id: Uuid,
        as_of: DateTime<Utc>,
    ) -> Result<RunView, RunsError> {
        let org_id = caller.org()?;
        let events = self.run_events_until(id, as_of).await?;
        let run: Run = fold(events.iter().cloned());
        if run.org_id() != Some(org_id) {
            return Err(RunError::NotFound.into());
        }
        Ok(run_view(id, &run, &events))
    }

    async fn run_events_until(&self, id: Uuid, as_of: DateTime<Utc>) -> Result<Vec<RunEvent>, RunsError> {
        let events = self.store.load_until::<Run>(&id.to_string(), as_of).await?;
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }
}

/// The aggregate after `events`, from its empty state.
fn fold<A: Aggregate + Default>(events: impl IntoIterator<Item = A::Event>) -> A {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    aggregate
}
