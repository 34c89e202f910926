//! `/v1/history/{aggregate_type}/{aggregate_id}`: one aggregate's events, in order, with who
//! caused each and from where, for auditors.
//!
//! What an organization sees of an aggregate is what its audit log holds of it
//! (`projections::audit::history`): its own aggregates whole, and of a platform-wide one (a
//! user, a session, an email claim) the events sealed into its log, those recorded while the
//! person was a member. Anything else answers 404, exactly like an id that does not exist.
//! Credentials in payloads (digests, sealed secrets) are left out and named in
//! `redacted_fields`.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{Enum, Object, OpenApi};
use projections::audit::entry::timestamp;
use projections::audit::history::{HistoryEvent, has_history, history_page};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::audit::auditor_of;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, ErrorCode};

/// Events in a page when the query names no `limit`.
const DEFAULT_PAGE: u32 = 50;

/// The kinds of aggregate the service records (an event's `aggregate_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(super) enum AggregateType {
    /// An agent definition and its versions.
    Agent,
    /// An API key.
    ApiKey,
    /// A conversation.
    Conversation,
    /// The organization's credit account (its id is the organization's): the ledger.
    CreditAccount,
    /// The claim of an email address by a user (platform-wide).
    EmailClaim,
    /// A platform administrator's impersonation of a member.
    Impersonation,
    /// An invitation to join the organization.
    Invitation,
    /// The claim of an API key prefix (platform-wide).
    KeyPrefixClaim,
    /// The organization itself: members, roles, suspensions.
    Organization,
    /// A run of an agent, step by step.
    Run,
    /// A sign-in and its refresh tokens (platform-wide).
    Session,
    /// An HTTP tool.
    Tool,
    /// A person's account (platform-wide).
    User,
}

impl AggregateType {
    /// The type as events record it.
    fn as_recorded(self) -> String {
        self.to_json()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One event of the aggregate: what happened, who caused it and from where (what its audit
/// entry says), and its payload. Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct HistoryEventBody {
    /// The event (`GET /v1/events/{id}` for the organization's own).
    event_id: Uuid,
    /// 1, 2, 3, … in the aggregate; the order of this list.
    sequence: i64,
    /// What happened: the event type, e.g. `organization.member_added`.
    #[oai(rename = "type")]
    event_type: String,
    /// The payload's version: the current one (older stored shapes are upcast).
    version: String,
    /// When it was recorded: UTC with six fractional digits, as the audit chain writes it.
    recorded_at: String,
    /// The organization it was recorded for; absent for a platform-wide event (about a person).
    org_id: Option<Uuid>,
    /// Who caused it: `user:<uuid>`, `api_key:<uuid>` or `system`.
    actor: String,
    /// The platform administrator acting as `actor` through an impersonation.
    impersonator_id: Option<String>,
    /// The HTTP request that caused it.
    request_id: Option<String>,
    /// The address that request came from (the peer, or what the trusted proxy named).
    client_ip: Option<String>,
    /// The request's `User-Agent` (at most 256 bytes).
    user_agent: Option<String>,
    /// Shared by every event caused, directly or not, by one outside request.
    correlation_id: Option<String>,
    /// The event (or request) that directly caused it.
    causation_id: Option<String>,
    /// The payload in the current shape of `version` (docs/events.md), credentials left out.
    data: Value,
    /// Payload fields left out because they hold a credential (a password, key or token
    /// digest, or a sealed secret); empty for most events.
    redacted_fields: Vec<String>,
}

impl From<HistoryEvent> for HistoryEventBody {
    fn from(event: HistoryEvent) -> Self {
        let content = event.content;
        Self {
            event_id: content.event_id,
            sequence: event.sequence,
            event_type: content.action,
            version: event.version,
            recorded_at: timestamp(content.recorded_at),
            org_id: event.org_id,
            actor: content.actor,
            impersonator_id: content.impersonator_id,
            request_id: content.request_id,
            client_ip: content.client_ip,
            user_agent: content.user_agent,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            data: event.data,
            redacted_fields: event.redacted,
        }
    }
}

/// A page of an aggregate's history, oldest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct HistoryPage {
    /// The aggregate's type.
    aggregate_type: AggregateType,
    /// The aggregate's id.
    aggregate_id: String,
    /// This page's events, in `sequence` order.
    events: Vec<HistoryEventBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<i64>,
}

/// The history of any aggregate.
pub struct HistoryApi;

#[OpenApi(tag = "ApiTags::Audit")]
impl HistoryApi {
    /// Read an aggregate's history
    ///
    /// Every event of one aggregate (a run, a conversation, an API key, the organization, a
    /// member's user account…) in order, oldest first, a page at a time: its type and version,
    /// its payload, and who caused it, as whom, when and from where. Of a platform-wide
    /// aggregate (a user, a session, an email claim) the organization sees what its audit log
    /// holds: the events recorded while the person was a member (and a registration that
    /// created the organization). Credentials are never shown: digests and sealed secrets are
    /// left out and named in `redacted_fields`. Another organization's aggregate, or one the
    /// organization has no event of, answers 404. Owners, admins and auditors.
    #[oai(
        path = "/history/:aggregate_type/:aggregate_id",
        method = "get",
        operation_id = "getAggregateHistory"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The aggregate's type, as events record it.
        aggregate_type: Path<AggregateType>,
        /// The aggregate's id, as events record it (a UUID for most types).
        aggregate_id: Path<String>,
        /// Most events in the page (1–100); 50 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor` (the last `sequence` it showed).
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
    ) -> Result<Json<HistoryPage>, ApiError> {
        let org_id = auditor_of(&auth.0)?;
        let kind = aggregate_type.0.as_recorded();
        let id = aggregate_id.0;
        let limit = i64::from(limit.0.unwrap_or(DEFAULT_PAGE));
        let after = cursor.0.unwrap_or(0);
        let internal = |error: sqlx::Error| ApiError::internal(&error);
        // One more than the page, to know whether another page follows.
        let mut events = history_page(
            &state.pool,
            state.store.upcasters(),
            org_id,
            &kind,
            &id,
            after,
            limit + 1,
        )
        .await
        .map_err(internal)?;
        if events.is_empty()
            && (after == 0
                || !has_history(&state.pool, org_id, &kind, &id)
                    .await
                    .map_err(internal)?)
        {
            return Err(ApiError::not_found(
                ErrorCode::NotFound,
                "no such aggregate in this organization",
            ));
        }
        let more = events.len() as i64 > limit;
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(Json(HistoryPage {
            aggregate_type: aggregate_type.0,
            next_cursor: more.then(|| events.last().map(|event| event.sequence)).flatten(),
            aggregate_id: id,
            events: events.into_iter().map(HistoryEventBody::from).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::registry::Registry;
    use poem_openapi::types::Type;
    use serde_json::Value;

    use super::AggregateType;

    /// The path's enum lists exactly the aggregate types the domain records.
    #[test]
    fn the_aggregate_types_are_the_domains() {
        let mut registry = Registry::new();
        AggregateType::register(&mut registry);
        let listed: Vec<String> = registry.schemas["AggregateType"]
            .enum_items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, domain::event_types::AGGREGATE_TYPES);
        assert_eq!(AggregateType::KeyPrefixClaim.as_recorded(), "key_prefix_claim");
    }
}
