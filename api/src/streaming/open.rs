//! Opening a run's stream for a caller, and the shape of what it carries.

use commands::identity::Caller;
use poem_openapi::Object;
use serde_json::Value;
use streams::{OpenError, RunStream};
use uuid::Uuid;

use crate::http::{ApiError, ErrorCode};
use crate::routes::AppState;

/// One event of a run's stream, as each SSE `data:` line and each WebSocket text frame
/// carries it. Ids grow by one per run and survive reconnects: resume after the last one seen.
#[derive(Object)]
pub struct RunStreamEvent {
    /// The event's id in the run's stream: 1, 2, 3, … A `run.resumed` or `run.cancelled`
    /// after a model stopped streaming skips the ids of chunks never recorded
    /// (`data.skipped_ids` says how many).
    pub id: u64,
    /// `run.started`, `message.delta`, `message.completed`, `tool_call.requested`,
    /// `tool_call.approved`, `tool_call.denied`, `tool_call.completed`, `usage.charged`,
    /// `run.paused`, `run.resumed`, and last `run.completed`, `run.failed` or `run.cancelled`.
    #[oai(rename = "type")]
    pub event_type: String,
    /// The run.
    pub run_id: Uuid,
    /// The event's own fields (`message.delta`: `{step, text}`), as `docs/events.md` lists
    /// them for the run's events.
    pub data: Value,
}

/// Run `run_id`'s events after `after` (from its first when `None`) for `caller`, who may read
/// every run of its organization; another organization's run is not found.
pub async fn open_stream(
    state: &AppState,
    caller: &Caller,
    run_id: Uuid,
    after: Option<u64>,
) -> Result<RunStream, ApiError> {
    let org_id = caller.org()?;
    state
        .streams
        .open(org_id, run_id, after)
        .await
        .map_err(|error| match error {
            OpenError::RunNotFound => {
                ApiError::not_found(ErrorCode::RunNotFound, "no run with this id in your organization")
            }
            OpenError::UnknownEventId { .. } => {
                ApiError::unprocessable(ErrorCode::UnknownEventId, error.to_string())
            }
            OpenError::Store(store) => store.into(),
        })
}
