//! Opening a run's stream for a caller, and the shape of what it carries.

use commands::identity::Caller;
use poem_openapi::Object;
use streams::{OpenError, RunStream};
use uuid::Uuid;

use crate::http::{ApiError, ErrorCode};
use crate::routes::AppState;

/// One Server-Sent Events message of a run's stream, as an SSE client parses it (`data`, `id`
/// and `event` fields; the comment lines between messages carry nothing).
#[derive(Object)]
pub struct RunStreamMessage {
    /// One event of the run as JSON, `{"id":…,"type":…,"run_id":…,"data":{…}}` (the same JSON as
    /// a WebSocket text frame): `id` grows by one per run and survives reconnects; `type` is the
    /// event type (`run.queued`, `run.started`, `message.delta`, `message.completed`,
    /// `tool_call.requested`, `tool_call.approved`, `tool_call.denied`, `tool_call.completed`,
    /// `run.paused`, `run.resumed`…, last `run.completed`, `run.failed` or `run.cancelled`);
    /// `data` holds the event's fields (`message.delta`: `{step, text}`), as docs/streams.md
    /// describes. Or, last, `{"type":"stream.cut_off","reason":…,"resume_after":<id>}` when
    /// the stream ends before the run.
    pub data: String,
    /// The event's id, what `Last-Event-ID` resumes after (a `stream.cut_off` has none of its
    /// own: the last event's stays).
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub id: Option<String>,
    /// Always `message`: no `event:` line is sent, so `EventSource.onmessage` receives every
    /// event.
    #[oai(validator(pattern = "^message$"))]
    pub event: Option<String>,
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
