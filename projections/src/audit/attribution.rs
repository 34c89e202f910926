//! Which organizations' logs an event goes into.
//!
//! - An event of an organization (`org_id` in its metadata) goes into that organization's log.
//!   A platform administrator's act on an organization (a suspension, an impersonation) is
//!   recorded with that organization's id, so it is there too.
//! - A platform-wide event (no `org_id`) about a person goes into the log of every organization
//!   the person belongs to at that point of the event log: a password change, a verified email
//!   address, a platform administrator's own sign-in. The person is the user aggregate's id,
//!   else the payload's `user_id` (an email claim, a session), else the acting user.
//! - While the person belongs to no organization (a registration comes before the organization
//!   created with it), such events are held and sealed into the log of the person's first
//!   organization, just before the event that made them a member (its creation, for a
//!   founder): a registration thus opens the log of the organization created with it.
//! - A platform-wide event about nobody (the system acting on no person) is in no log.
//!
//! Memberships are the projector's own (`audit_memberships`), folded in log order, so "at that
//! point of the log" holds on a replay too.

use domain::organization::OrganizationEvent;
use eventstore::RecordedEvent;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::entry::{BindContent, EntryContent};

/// How an organization event changes who belongs to it, if it does.
pub(super) enum MembershipChange {
    /// `user_id` became a member (a founder, an added member, an invitee who joined).
    Joined { org_id: Uuid, user_id: Uuid },
    /// `user_id` left.
    Left { org_id: Uuid, user_id: Uuid },
}

/// The membership change an event makes. Organization events that do not parse as the current
/// shapes are treated as changing nothing: the identity projector is the one that stalls on them.
pub(super) fn membership_change(event: &RecordedEvent) -> Option<MembershipChange> {
    if event.aggregate_type != "organization" {
        return None;
    }
    let org_id = Uuid::parse_str(&event.aggregate_id).ok()?;
    match OrganizationEvent::deserialize(&event.data).ok()? {
        OrganizationEvent::Created { owner_user_id, .. } => Some(MembershipChange::Joined {
            org_id,
            user_id: owner_user_id,
        }),
        OrganizationEvent::MemberAdded { user_id, .. } | OrganizationEvent::MemberJoined { user_id, .. } => {
            Some(MembershipChange::Joined { org_id, user_id })
        }
        OrganizationEvent::MemberRemoved { user_id } => Some(MembershipChange::Left { org_id, user_id }),
        _ => None,
    }
}

/// The person a platform-wide event is about, if any.
pub(super) fn subject(event: &RecordedEvent) -> Option<Uuid> {
    if event.aggregate_type == "user" {
        return Uuid::parse_str(&event.aggregate_id).ok();
    }
    let from_payload = event
        .data
        .get("user_id")
        .and_then(|value| value.as_str())
        .and_then(|text| Uuid::parse_str(text).ok());
    from_payload.or_else(|| {
        let actor = event.metadata.get("actor")?.as_str()?;
        Uuid::parse_str(actor.strip_prefix("user:")?).ok()
    })
}

/// Records a membership change in the projector's own table.
pub(super) async fn record(
    connection: &mut PgConnection,
    change: &MembershipChange,
) -> Result<(), sqlx::Error> {
    let query = match change {
        MembershipChange::Joined { org_id, user_id } => sqlx::query(
            "INSERT INTO audit_memberships (user_id, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(org_id),
        MembershipChange::Left { org_id, user_id } => {
            sqlx::query("DELETE FROM audit_memberships WHERE user_id = $1 AND org_id = $2")
                .bind(user_id)
                .bind(org_id)
        }
    };
    query.execute(connection).await?;
    Ok(())
}

/// The organizations `user_id` belongs to now (at the projector's point in the log).
pub(super) async fn organizations_of(
    connection: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT org_id FROM audit_memberships WHERE user_id = $1 ORDER BY org_id")
        .bind(user_id)
        .fetch_all(connection)
        .await
}

/// Keeps an event about `user_id` for the person's first organization.
pub(super) async fn hold(
    connection: &mut PgConnection,
    user_id: Uuid,
    position: i64,
    content: &EntryContent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_held (user_id, position, event_id, recorded_at, actor, impersonator_id, action,
                                 target_type, target_id, request_id, client_ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(position)
    .bind_content(content)
    .execute(connection)
    .await?;
    Ok(())
}

/// Takes every event held for `user_id`, in log order, with its position.
pub(super) async fn take_held(
    connection: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<(i64, EntryContent)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Held {
        position: i64,
        #[sqlx(flatten)]
        content: EntryContent,
    }
    let held: Vec<Held> = sqlx::query_as(
        "DELETE FROM audit_held WHERE user_id = $1
         RETURNING position, event_id, recorded_at, actor, impersonator_id, action, target_type, target_id,
                   request_id, client_ip, user_agent",
    )
    .bind(user_id)
    .fetch_all(connection)
    .await?;
    let mut held: Vec<(i64, EntryContent)> =
        held.into_iter().map(|row| (row.position, row.content)).collect();
    held.sort_by_key(|(position, _)| *position);
    Ok(held)
}
