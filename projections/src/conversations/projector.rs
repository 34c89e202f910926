use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::conversation::ConversationEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use super::messages;
use super::transcript::RunTranscript;
use crate::BatchProjector;
use crate::decode::{payload, recorded_at};
use crate::grouped::by_aggregate;

/// The conversation view projector's name: its checkpoint key and `projections rebuild`
/// argument.
pub const CONVERSATIONS: &str = "conversations";

/// Keeps `conversation_views` and `conversation_messages`: each read of the log is folded in
/// memory into the rows it touches (read once, written once).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConversationsProjector;

#[async_trait]
impl BatchProjector for ConversationsProjector {
    fn name(&self) -> &'static str {
        CONVERSATIONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "conversation_views",
            "conversation_view_runs",
            "conversation_messages",
        ]
    }

    /// Conversation events, and the run events that change a transcript: not a run's text as
    /// it streams, nor its model calls' bookkeeping.
    fn folds(&self, event: &RecordedEvent) -> bool {
        event.aggregate_type == "conversation"
            || (event.aggregate_type == "run" && RunTranscript::folds(&event.event_type))
    }

    async fn fold(&self, connection: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        fold_conversations(connection, events).await?;
        messages::fold_runs(connection, events).await
    }
}

/// A conversation's row while a batch is folded into it.
#[derive(Clone, Debug)]
struct Row {
    org_id: Option<Uuid>,
    agent_id: Uuid,
    agent_version: i32,
    title: Option<String>,
    archived: bool,
    active_run: Option<Uuid>,
    run_count: i32,
    created: Option<(DateTime<Utc>, i64)>,
    updated_at: Option<DateTime<Utc>>,
    version: i64,
}

const LOAD: &str = "
SELECT conversation_id, org_id, agent_id, agent_version, title, archived, active_run, run_count,
       created_at, created_position, version
  FROM conversation_views WHERE conversation_id = ANY($1)";

type Loaded = (
    Uuid,
    Uuid,
    Uuid,
    i32,
    Option<String>,
    bool,
    Option<Uuid>,
    i32,
    DateTime<Utc>,
    i64,
    i64,
);

const SAVE: &str = "
INSERT INTO conversation_views (conversation_id, org_id, agent_id, agent_version, title, archived,
    active_run, run_count, created_at, created_position, updated_at, version)
SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::bool[],
    $7::uuid[], $8::int[], $9::timestamptz[], $10::bigint[], $11::timestamptz[], $12::bigint[])
ON CONFLICT (conversation_id) DO UPDATE
   SET title = EXCLUDED.title, archived = EXCLUDED.archived, active_run = EXCLUDED.active_run,
       run_count = EXCLUDED.run_count, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version
 WHERE conversation_views.version < EXCLUDED.version";

async fn fold_conversations(
    connection: &mut PgConnection,
    events: &[RecordedEvent],
) -> Result<(), sqlx::Error> {
    let conversations = by_aggregate(events, "conversation")?;
    if conversations.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = conversations.iter().map(|(id, _)| *id).collect();
    let loaded: Vec<Loaded> = sqlx::query_as(LOAD)
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await?;
    let mut rows: HashMap<Uuid, Row> = loaded.into_iter().map(Row::loaded).collect();
    let mut changed = Vec::new();
    for (id, events) in &conversations {
        let mut row = rows.remove(id).unwrap_or_else(Row::empty);
        let mut folded = false;
        let folded_up_to = row.version;
        for recorded in events.iter().filter(|event| event.sequence > folded_up_to) {
            row.fold(payload(recorded)?, recorded_at(recorded)?, recorded.position);
            row.version = recorded.sequence;
            folded = true;
        }
        if folded {
            changed.push((*id, row));
        }
    }
    save(connection, changed).await
}

impl Row {
    fn empty() -> Self {
        Self {
            org_id: None,
            agent_id: Uuid::nil(),
            agent_version: 0,
            title: None,
            archived: false,
            active_run: None,
            run_count: 0,
            created: None,
            updated_at: None,
            version: 0,
        }
    }

    fn loaded(loaded: Loaded) -> (Uuid, Self) {
        let (
            id,
            org_id,
            agent_id,
            agent_version,
            title,
            archived,
            active_run,
            run_count,
            created_at,
            position,
            version,
        ) = loaded;
        let row = Self {
            org_id: Some(org_id),
            agent_id,
            agent_version,
            title,
            archived,
            active_run,
            run_count,
            created: Some((created_at, position)),
            updated_at: None,
            version,
        };
        (id, row)
    }

    fn fold(&mut self, event: ConversationEvent, at: DateTime<Utc>, position: i64) {
        match event {
            ConversationEvent::Created {
                org_id,
                agent_id,
                agent_version,
                title,
            } => {
                self.org_id = Some(org_id);
                self.agent_id = agent_id;
                self.agent_version = i32::try_from(agent_version).unwrap_or(i32::MAX);
                self.title = title;
                self.created = Some((at, position));
            }
            ConversationEvent::RunStarted { run_id, .. } => {
                self.active_run = Some(run_id);
                self.run_count += 1;
            }
            ConversationEvent::RunEnded { run_id } => {
                if self.active_run == Some(run_id) {
                    self.active_run = None;
                }
            }
            ConversationEvent::Archived => self.archived = true,
        }
        self.updated_at = Some(at);
    }
}

#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    org_id: Vec<Uuid>,
    agent_id: Vec<Uuid>,
    agent_version: Vec<i32>,
    title: Vec<Option<String>>,
    archived: Vec<bool>,
    active_run: Vec<Option<Uuid>>,
    run_count: Vec<i32>,
    created_at: Vec<DateTime<Utc>>,
    created_position: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
}

async fn save(connection: &mut PgConnection, rows: Vec<(Uuid, Row)>) -> Result<(), sqlx::Error> {
    let mut columns = Columns::default();
    for (id, row) in rows {
        // Without its creation (never the case in a whole log) there is nothing to show.
        let (Some(org_id), Some((created_at, created_position)), Some(updated_at)) =
            (row.org_id, row.created, row.updated_at)
        else {
            continue;
        };
        columns.id.push(id);
        columns.org_id.push(org_id);
        columns.agent_id.push(row.agent_id);
        columns.agent_version.push(row.agent_version);
        columns.title.push(row.title);
        columns.archived.push(row.archived);
        columns.active_run.push(row.active_run);
        columns.run_count.push(row.run_count);
        columns.created_at.push(created_at);
        columns.created_position.push(created_position);
        columns.updated_at.push(updated_at);
        columns.version.push(row.version);
    }
    if columns.id.is_empty() {
        return Ok(());
    }
    sqlx::query(SAVE)
        .bind(columns.id)
        .bind(columns.org_id)
        .bind(columns.agent_id)
        .bind(columns.agent_version)
        .bind(columns.title)
        .bind(columns.archived)
        .bind(columns.active_run)
        .bind(columns.run_count)
        .bind(columns.created_at)
        .bind(columns.created_position)
        .bind(columns.updated_at)
        .bind(columns.version)
        .execute(connection)
        .await?;
    Ok(())
}
