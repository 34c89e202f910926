//! The history of one aggregate, event by event, as an organization's auditors may read it
//! (`GET /v1/history/{aggregate_type}/{aggregate_id}`).
//!
//! Which events an organization sees is the audit log's own rule, so the two never disagree:
//! - an event recorded for the organization (`org_id` in its metadata) is its;
//! - a platform-wide event (no `org_id`: a user's registration, a password change, an email
//!   claim) is its when the audit log sealed it into the organization's log, that is, when its
//!   person was a member when it happened, or it opened the log of the organization created with
//!   it (see `attribution`). Such events appear once the audit projector has sealed them.
//!
//! Everything else, another organization's aggregate included, reads as nothing at all.
//!
//! Each event says what its audit entry says ([`EntryContent`]: actor, impersonator, time,
//! request, address, agent) and carries its payload in the current shape (upcast, like every
//! reader's), without credentials: the fields [`domain::is_credential_field`] names are left
//! out and listed instead.

use eventstore::RecordedEvent;
use eventstore::log::{EVENT_COLUMNS, EventRow, into_event};
use eventstore::store::Upcasters;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::entry::EntryContent;

/// Whether event `e` is the organization `$1`'s to see (the audit log's rule, above).
const VISIBLE_TO_ORG: &str = "(e.org_id = $1
      OR (e.org_id IS NULL
          AND EXISTS (SELECT 1 FROM audit_entries a WHERE a.org_id = $1 AND a.position = e.position)))";

/// One event of an aggregate's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEvent {
    /// 1, 2, 3, … in the aggregate.
    pub sequence: i64,
    /// The organization the event was recorded for; `None` for a platform-wide event.
    pub org_id: Option<Uuid>,
    /// The payload's version: the current one (older shapes are upcast).
    pub version: String,
    /// Who, as whom, what, on what, when and from where: what the event's audit entry says.
    pub content: EntryContent,
    /// Shared by every event caused by one outside request, from the metadata.
    pub correlation_id: Option<String>,
    /// The event or request that directly caused it, from the metadata.
    pub causation_id: Option<String>,
    /// The payload in the current shape of `version`, credentials left out.
    pub data: Value,
    /// The names of the payload fields left out as credentials, sorted.
    pub redacted: Vec<String>,
}

impl HistoryEvent {
    /// `event` (already upcast) as history: its audit entry's content and its payload without
    /// credentials. An event whose metadata lacks what an entry needs is an error, as it is for
    /// the audit projector.
    pub fn from_event(mut event: RecordedEvent) -> Result<Self, sqlx::Error> {
        let content =
            EntryContent::from_event(&event).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        let mut redacted = Vec::new();
        if let Value::Object(fields) = &mut event.data {
            fields.retain(|name, _| {
                let credential = domain::is_credential_field(name);
                if credential {
                    redacted.push(name.clone());
                }
                !credential
            });
        }
        redacted.sort_unstable();
        let text = |key: &str| event.metadata.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            sequence: event.sequence,
            org_id: event.org_id,
            correlation_id: text("correlation_id"),
            causation_id: text("causation_id"),
            version: event.version,
            content,
            data: event.data,
            redacted,
        })
    }
}

/// At most `limit` events of the aggregate that `org_id` may see, after `after_sequence`, in
/// sequence order, each upcast to its current shape.
pub async fn history_page<'e, E: PgExecutor<'e>>(
    executor: E,
    upcasters: &Upcasters,
    org_id: Uuid,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<HistoryEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e
          WHERE e.aggregate_type = $2 AND e.aggregate_id = $3 AND e.sequence > $4 AND {VISIBLE_TO_ORG}
          ORDER BY e.sequence
          LIMIT $5"
    ))
    .bind(org_id)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(after_sequence)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.into_iter()
        .map(|row| HistoryEvent::from_event(upcasters.upcast_recorded(into_event(row)?)))
        .collect()
}

/// Whether `org_id` may see any event of the aggregate: an aggregate with none is, to that
/// organization, one that does not exist.
pub async fn has_history<'e, E: PgExecutor<'e>>(
    executor: E,
    org_id: Uuid,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM events e
                         WHERE e.aggregate_type = $2 AND e.aggregate_id = $3 AND {VISIBLE_TO_ORG})"
    ))
    .bind(org_id)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_one(executor)
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_events::recorded;

    fn event(data: Value) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            transaction_id: 9,
            sequence: 3,
            data,
            metadata: json!({
                "actor": "system",
                "recorded_at": "2026-12-06T10:15:30.123456Z",
                "correlation_id": "c",
                "request_id": "r",
            }),
            ..recorded("tool", "tool.secret_rotated")
        }
    }

    #[test]
    fn credentials_are_left_out_and_named_everything_else_kept() {
        let history = HistoryEvent::from_event(event(json!({
            "type": "tool.secret_rotated",
            "secret": "v1.k.n.c",
            "token_hash": "d1g35t",
            "at": "2026-12-06T10:15:30Z",
        })))
        .unwrap();

        assert_eq!(
            history.data,
            json!({ "type": "tool.secret_rotated", "at": "2026-12-06T10:15:30Z" })
        );
        assert_eq!(history.redacted, ["secret", "token_hash"]);
        assert_eq!(history.content.actor, "system");
        assert_eq!(history.content.request_id.as_deref(), Some("r"));
        assert_eq!(history.correlation_id.as_deref(), Some("c"));
        assert_eq!(history.causation_id, None);
    }

    #[test]
    fn an_event_without_an_actor_is_an_error_as_for_the_audit_log() {
        let mut broken = event(json!({}));
        broken.metadata = json!({ "recorded_at": "2026-12-06T10:15:30Z" });
        assert!(HistoryEvent::from_event(broken).is_err());
    }
}
