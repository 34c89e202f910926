use eventstore::RecordedEvent;
use eventstore::log::read_event;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, ErrorCode};

/// The organization's events, one by one.
pub struct EventsApi;

/// A committed event, whole: the event JSON of `docs/events.md` (as NATS carries it, but never
/// cut). Fields of `data` named `*_hash` (credential digests) are left out.
#[derive(Object)]
struct EventView {
    /// The event's stable id (the NATS message id).
    id: Uuid,
    /// Global position, taken at insert.
    position: i64,
    /// The writing transaction, as decimal text; with `position`, the log cursor.
    transaction_id: String,
    /// The organization.
    org_id: Uuid,
    /// Aggregate type, e.g. `organization`.
    aggregate_type: String,
    /// Aggregate id.
    aggregate_id: String,
    /// 1-based sequence within the aggregate.
    sequence: i64,
    /// Dotted event type, e.g. `organization.member_added`.
    #[oai(rename = "type")]
    event_type: String,
    /// Payload schema version, the current one (older stored shapes are upcast).
    version: String,
    /// The payload in the current shape of `version`.
    data: Value,
    /// Actor, request id, correlation and causation ids, impersonator, recorded-at time.
    metadata: Value,
}

impl EventView {
    fn new(event: RecordedEvent, org_id: Uuid) -> Self {
        let event = event.without_digests();
        Self {
            id: event.id,
            position: event.position,
            transaction_id: event.transaction_id.to_string(),
            org_id,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            version: event.version,
            data: event.data,
            metadata: event.metadata,
        }
    }
}

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// Read one event of the organization
    ///
    /// By its id, whole (any role). An event too large for NATS reaches subscribers with `truncated: true`; this answers it
    /// with every field. Another organization's event, or a platform-wide one, answers 404.
    #[oai(path = "/events/:id", method = "get", operation_id = "getEvent")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The event's id (`event_id` in the bus message).
        id: Path<Uuid>,
    ) -> Result<Json<EventView>, ApiError> {
        let caller = auth.0;
        let org_id = caller.org()?;
        caller.require(|_| true, "read events")?;
        let event = read_event(&state.pool, state.store.upcasters(), org_id, id.0)
            .await
            .map_err(|error| ApiError::internal(&error))?
            .ok_or_else(|| ApiError::not_found(ErrorCode::NotFound, "event not found"))?;
        Ok(Json(EventView::new(event, org_id)))
    }
}
