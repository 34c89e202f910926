//! Reads of the conversation view.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::transcript::{Speaker, TranscriptMessage};

/// A conversation as the view holds it.
#[derive(Clone, Debug)]
pub struct ViewedConversation {
    /// The conversation.
    pub id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// The agent version every run uses.
    pub agent_version: u32,
    /// Its label.
    pub title: Option<String>,
    /// Whether it takes no new runs.
    pub archived: bool,
    /// The run not yet ended.
    pub active_run: Option<Uuid>,
    /// How many runs it has had.
    pub runs: usize,
    /// Where its creation is in the log: the list's cursor.
    pub position: i64,
}

const COLUMNS: &str =
    "conversation_id, agent_id, agent_version, title, archived, active_run, run_count, created_position";

type Row = (Uuid, Uuid, i32, Option<String>, bool, Option<Uuid>, i32, i64);

/// Up to `limit` conversations of `org_id`, newest first, created before the log position
/// `before` when given.
pub async fn conversations_page(
    pool: &PgPool,
    org_id: Uuid,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<ViewedConversation>, sqlx::Error> {
    let query = format!(
        "SELECT {COLUMNS} FROM conversation_views
          WHERE org_id = $1 AND created_position < COALESCE($2, 9223372036854775807)
          ORDER BY created_position DESC LIMIT $3"
    );
    let rows: Vec<Row> = sqlx::query_as(&query)
        .bind(org_id)
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(into_conversation).collect())
}

/// The conversation `id` of `org_id` with its messages in order; `None` when the view has no
/// such conversation of that organization.
pub async fn conversation(
    pool: &PgPool,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<(ViewedConversation, Vec<TranscriptMessage>)>, sqlx::Error> {
    let query =
        format!("SELECT {COLUMNS} FROM conversation_views WHERE conversation_id = $1 AND org_id = $2");
    let Some(row) = sqlx::query_as::<_, Row>(&query)
        .bind(id)
        .bind(org_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT run_id, role, content, tool_calls, call FROM conversation_messages
          WHERE conversation_id = $1 ORDER BY run_position, ordinal",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let messages = rows.into_iter().map(into_message).collect::<Result<_, _>>()?;
    Ok(Some((into_conversation(row), messages)))
}

fn into_conversation(row: Row) -> ViewedConversation {
    let (id, agent_id, agent_version, title, archived, active_run, run_count, position) = row;
    ViewedConversation {
        id,
        agent_id,
        agent_version: u32::try_from(agent_version).unwrap_or(0),
        title,
        archived,
        active_run,
        runs: usize::try_from(run_count).unwrap_or(0),
        position,
    }
}

/// A stored message: run, role, content, tool calls, the call it answers.
pub(super) type MessageRow = (Uuid, String, String, Value, Option<Value>);

/// A stored message as the transcript holds it.
pub(super) fn into_message(row: MessageRow) -> Result<TranscriptMessage, sqlx::Error> {
    let (run_id, role, content, tool_calls, call) = row;
    let decode = |error: serde_json::Error| sqlx::Error::Decode(Box::new(error));
    Ok(TranscriptMessage {
        run_id,
        role: Speaker::from_name(&role).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "role".to_owned(),
            source: format!("unknown role {role:?}").into(),
        })?,
        content,
        tool_calls: serde_json::from_value(tool_calls).map_err(decode)?,
        call: call.map(serde_json::from_value).transpose().map_err(decode)?,
    })
}
