//! The conversation view's messages: each run's transcript, folded from the run's events into
//! `conversation_messages` (and how far each run was folded into `conversation_view_runs`).

use std::collections::HashMap;

use domain::run::RunEvent;
use eventstore::RecordedEvent;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::queries::{MessageRow, into_message};
use super::transcript::{RunTranscript, TranscriptMessage};
use crate::decode::{aggregate_uuid, payload};
use crate::grouped::by_aggregate;

/// A run as this view knows it.
struct ViewRun {
    conversation_id: Option<Uuid>,
    run_position: i64,
    version: i64,
}

const LOAD_RUNS: &str = "SELECT run_id, conversation_id, run_position, version FROM conversation_view_runs WHERE run_id = ANY($1)";
const LOAD_MESSAGES: &str = "
SELECT run_id, role, content, tool_calls, call FROM conversation_messages
 WHERE run_id = ANY($1) ORDER BY run_id, ordinal";
const SAVE_RUNS: &str = "
INSERT INTO conversation_view_runs (run_id, conversation_id, run_position, version)
SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[])
ON CONFLICT (run_id) DO UPDATE SET version = EXCLUDED.version
 WHERE conversation_view_runs.version < EXCLUDED.version";
const SAVE_MESSAGES: &str = "
INSERT INTO conversation_messages (run_id, ordinal, conversation_id, run_position, role, content,
    tool_calls, call)
SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::jsonb[], $8::jsonb[])
ON CONFLICT (run_id, ordinal) DO UPDATE
   SET content = EXCLUDED.content, tool_calls = EXCLUDED.tool_calls, call = EXCLUDED.call";

/// Folds the run events of `events` into the runs' transcripts.
pub(super) async fn fold_runs(
    connection: &mut PgConnection,
    events: &[RecordedEvent],
) -> Result<(), sqlx::Error> {
    let runs = by_aggregate(events, "run");
    if runs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = runs
        .iter()
        .map(|(_, events)| aggregate_uuid(events[0]))
        .collect::<Result<_, _>>()?;
    let known: Vec<(Uuid, Uuid, i64, i64)> = sqlx::query_as(LOAD_RUNS)
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await?;
    let mut known: HashMap<Uuid, ViewRun> = known
        .into_iter()
        .map(|(run_id, conversation_id, run_position, version)| {
            let run = ViewRun {
                conversation_id: Some(conversation_id),
                run_position,
                version,
            };
            (run_id, run)
        })
        .collect();
    // Only runs that gained a message need their messages read.
    let talking: Vec<Uuid> = ids
        .iter()
        .zip(&runs)
        .filter(|(id, (_, events))| {
            let version = known.get(id).map_or(0, |run| run.version);
            events
                .iter()
                .any(|event| event.sequence > version && RunTranscript::folds(&event.event_type))
        })
        .map(|(id, _)| *id)
        .collect();
    let mut transcripts = load_messages(connection, &talking).await?;
    let mut changed_runs = Vec::new();
    for (id, (_, events)) in ids.iter().zip(&runs) {
        let mut run = known.remove(id).unwrap_or(ViewRun {
            conversation_id: None,
            run_position: 0,
            version: 0,
        });
        let mut transcript = transcripts.get_mut(id);
        let folded_up_to = run.version;
        for recorded in events.iter().filter(|event| event.sequence > folded_up_to) {
            if RunTranscript::folds(&recorded.event_type) {
                let event: RunEvent = payload(recorded)?;
                if let RunEvent::Queued { conversation_id, .. } = &event {
                    run.conversation_id = Some(*conversation_id);
                    run.run_position = recorded.position;
                }
                if let Some(transcript) = transcript.as_deref_mut() {
                    transcript.apply(&event);
                }
            }
            run.version = recorded.sequence;
        }
        if run.version > 0 {
            changed_runs.push((*id, run));
        }
    }
    save_messages(connection, &changed_runs, &transcripts).await?;
    save_runs(connection, &changed_runs).await
}

async fn load_messages(
    connection: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, RunTranscript>, sqlx::Error> {
    let mut transcripts: HashMap<Uuid, Vec<TranscriptMessage>> =
        ids.iter().map(|id| (*id, Vec::new())).collect();
    if !ids.is_empty() {
        let rows: Vec<MessageRow> = sqlx::query_as(LOAD_MESSAGES)
            .bind(ids)
            .fetch_all(&mut *connection)
            .await?;
        for row in rows {
            let message = into_message(row)?;
            transcripts.entry(message.run_id).or_default().push(message);
        }
    }
    Ok(transcripts
        .into_iter()
        .map(|(id, messages)| (id, RunTranscript::new(id, messages)))
        .collect())
}

#[derive(Default)]
struct MessageColumns {
    run_id: Vec<Uuid>,
    ordinal: Vec<i32>,
    conversation_id: Vec<Uuid>,
    run_position: Vec<i64>,
    role: Vec<&'static str>,
    content: Vec<String>,
    tool_calls: Vec<Value>,
    call: Vec<Option<Value>>,
}

/// Writes every message of the runs whose transcript was read (an earlier message may have
/// gained a tool call).
async fn save_messages(
    connection: &mut PgConnection,
    runs: &[(Uuid, ViewRun)],
    transcripts: &HashMap<Uuid, RunTranscript>,
) -> Result<(), sqlx::Error> {
    let encode = |error: serde_json::Error| sqlx::Error::Encode(Box::new(error));
    let mut columns = MessageColumns::default();
    for (id, run) in runs {
        let (Some(transcript), Some(conversation_id)) = (transcripts.get(id), run.conversation_id) else {
            continue;
        };
        for (ordinal, message) in transcript.messages().iter().enumerate() {
            columns.run_id.push(*id);
            columns.ordinal.push(i32::try_from(ordinal).unwrap_or(i32::MAX));
            columns.conversation_id.push(conversation_id);
            columns.run_position.push(run.run_position);
            columns.role.push(message.role.as_str());
            columns.content.push(message.content.clone());
            columns
                .tool_calls
                .push(serde_json::to_value(&message.tool_calls).map_err(encode)?);
            columns.call.push(
                message
                    .call
                    .as_ref()
                    .map(serde_json::to_value)
                    .transpose()
                    .map_err(encode)?,
            );
        }
    }
    if columns.run_id.is_empty() {
        return Ok(());
    }
    sqlx::query(SAVE_MESSAGES)
        .bind(columns.run_id)
        .bind(columns.ordinal)
        .bind(columns.conversation_id)
        .bind(columns.run_position)
        .bind(columns.role)
        .bind(columns.content)
        .bind(columns.tool_calls)
        .bind(columns.call)
        .execute(connection)
        .await?;
    Ok(())
}

async fn save_runs(connection: &mut PgConnection, runs: &[(Uuid, ViewRun)]) -> Result<(), sqlx::Error> {
    let runs: Vec<(Uuid, Uuid, i64, i64)> = runs
        .iter()
        .filter_map(|(id, run)| Some((*id, run.conversation_id?, run.run_position, run.version)))
        .collect();
    if runs.is_empty() {
        return Ok(());
    }
    let (mut ids, mut conversations, mut positions, mut versions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, conversation_id, position, version) in runs {
        ids.push(id);
        conversations.push(conversation_id);
        positions.push(position);
        versions.push(version);
    }
    sqlx::query(SAVE_RUNS)
        .bind(ids)
        .bind(conversations)
        .bind(positions)
        .bind(versions)
        .execute(connection)
        .await?;
    Ok(())
}
