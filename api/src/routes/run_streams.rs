//! `/v1/runs/{id}/events` (Server-Sent Events), `/v1/runs/{id}/ws` (WebSocket) and
//! `/v1/stream-tickets`: a run's events live, from any node, resumable after any id.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::web::websocket::WebSocket;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, ErrorCode, RequestId};
use crate::streaming::{EventStreamAnswer, SocketUpgrade, StreamAuth, Upkeep, open_stream};

/// A run's live events.
pub struct RunStreamsApi;

/// The run a ticket is for.
#[derive(Object)]
struct StreamTicketRequest {
    /// The run whose stream the ticket opens (a run of the caller's organization).
    run_id: Uuid,
}

/// A ticket, shown this once; only its hash is kept.
#[derive(Object)]
struct StreamTicketBody {
    /// Pass it as `?ticket=` to `GET /v1/runs/{run_id}/events` or `/ws`, instead of the
    /// `Authorization` header: it works once, for this run only.
    ticket: String,
    /// When it stops working if unused (60 s after it was issued).
    expires_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
enum TicketIssued {
    /// Issued.
    #[oai(status = 201)]
    Created(Json<StreamTicketBody>),
}

#[OpenApi(tag = "ApiTags::Streams")]
impl RunStreamsApi {
    /// Stream a run's events (Server-Sent Events)
    ///
    /// Every event of the run from its first (or after the id resumed from), then live as it
    /// happens: token deltas as the model produces them, every step, and last the terminal
    /// event, after which the response ends. Each event is `id: <id>` and `data: <JSON>`
    /// (`{id, type, run_id, data}`) without an `event:` line, so `EventSource.onmessage`
    /// receives them all. A comment line (`: ping`) every 15 s keeps idle proxies from closing
    /// the connection.
    ///
    /// Resume with `Last-Event-ID` (an `EventSource` sends it when it reconnects) or `after`:
    /// every later event comes once, whichever node serves the request. An id the run never
    /// had is 422 `unknown_event_id`; resuming after the run's last event is 204, which stops
    /// an `EventSource` from reconnecting.
    ///
    /// A stream ended before its run says so last, without an id:
    /// `data: {"type":"stream.cut_off","reason":…,"resume_after":<id>}`, with `reason`
    /// `fell_behind` (the client read slower than the run streamed), `credentials` (a revoked
    /// key, a removed member, a suspended organization…; `code` says which; checked every 4 s,
    /// so within 5 s of the change) or `server_shutdown`. Reconnect to resume after that id.
    ///
    /// Browsers, which cannot set headers on an `EventSource`, pass a stream ticket as
    /// `?ticket=` instead of `Authorization` (`POST /v1/stream-tickets`). Every member of the
    /// organization may read its runs, auditors too.
    #[oai(path = "/runs/:id/events", method = "get", operation_id = "streamRunEvents")]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: StreamAuth,
        /// The run's id.
        id: Path<Uuid>,
        /// The last event id received: the stream resumes after it (takes precedence over
        /// `after`).
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<u64>>,
        /// The last event id received, for clients that cannot set `Last-Event-ID`.
        after: Query<Option<u64>>,
    ) -> Result<EventStreamAnswer, ApiError> {
        let caller = auth.caller(&state, id.0).await?;
        let stream = open_stream(&state, &caller, id.0, last_event_id.0.or(after.0)).await?;
        let upkeep = Upkeep::new(&state.stream_watch, caller, false);
        Ok(EventStreamAnswer::new(stream, upkeep))
    }

    /// Stream a run's events (WebSocket)
    ///
    /// The events of `streamRunEvents` as WebSocket text frames (the same JSON), from
    /// the run's first or after `after`; after the terminal event the socket closes with 1000
    /// `run_ended`. An id the run never had is 422 `unknown_event_id`, before the upgrade, as
    /// are every other refusal (problem+json); a request that is not a WebSocket upgrade is 400
    /// `websocket_upgrade_required`.
    ///
    /// The client may send `{"type":"approve","call_id":…}`, `{"type":"deny","call_id":…,
    /// "reason":…}` and `{"type":"cancel"}`: the same effect, rules and audit record as the
    /// REST routes (auditors may read, not decide). Each is answered with
    /// `{"type":"ack","request":…,"call_id":…}` or `{"type":"error","request":…,"status":…,
    /// "code":…,"detail":…}` carrying the REST route's code; anything else is answered with
    /// `invalid_message`, and the socket stays open.
    ///
    /// A ping every 15 s; a client silent for 30 s (no pong, no message) is closed. A stream
    /// ended before its run sends `{"type":"stream.cut_off",…}` (as SSE does) and closes with
    /// 1013 (`fell_behind`), 1008 (the credentials' code) or 1012 (`server_shutdown`), the
    /// reason ending `; resume_after=<id>`. Browsers pass a stream ticket as `?ticket=`.
    #[oai(path = "/runs/:id/ws", method = "get", operation_id = "openRunSocket")]
    async fn socket(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: StreamAuth,
        /// The run's id.
        id: Path<Uuid>,
        /// The last event id received: the stream resumes after it.
        after: Query<Option<u64>>,
        websocket: Option<WebSocket>,
    ) -> Result<SocketUpgrade, ApiError> {
        let caller = auth.caller(&state, id.0).await?;
        let stream = open_stream(&state, &caller, id.0, after.0).await?;
        let websocket = websocket.ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::WebsocketUpgradeRequired,
                "this route speaks WebSocket only: send a WebSocket upgrade (or read the run's \
                 events as Server-Sent Events at /v1/runs/{id}/events)",
            )
        })?;
        let upkeep = Upkeep::new(&state.stream_watch, caller, true);
        Ok(SocketUpgrade::new(
            websocket,
            &state,
            request_id.0.clone(),
            stream,
            upkeep,
        ))
    }

    /// Create a stream ticket
    ///
    /// A ticket for a browser to open one run's stream (`?ticket=` on `streamRunEvents` or
    /// `openRunSocket`), since an `EventSource` or a `WebSocket` cannot carry the
    /// `Authorization` header. It works once, for that run, for 60 s, and acts as the
    /// credentials that asked for it: their standing is checked when it is used and while the
    /// stream lasts. Any member of the run's organization may have one. A ticket is used up by
    /// the first request that presents it, whatever comes of that request; using it again is
    /// 401 `stream_ticket_used`, after 60 s 401 `stream_ticket_expired`, on another run 403
    /// `stream_ticket_for_another_run`.
    #[oai(
        path = "/stream-tickets",
        method = "post",
        operation_id = "createStreamTicket"
    )]
    async fn create_ticket(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<StreamTicketRequest>,
    ) -> Result<TicketIssued, ApiError> {
        let issued = state.runs.issue_stream_ticket(&auth.0, body.run_id).await?;
        Ok(TicketIssued::Created(Json(StreamTicketBody {
            ticket: issued.ticket,
            expires_at: issued.expires_at,
        })))
    }
}
