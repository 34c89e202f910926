//! The `organizations` and `memberships` tables, from organization events.

use domain::organization::{CREATED_EVENT_TYPE, OrganizationEvent};
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::{aggregate_uuid, payload, recorded_at};
use crate::runs::as_bigint;

/// The organization event types these tables fold.
pub(super) const FOLDS: &[&str] = &[
    CREATED_EVENT_TYPE,
    "organization.renamed",
    "organization.suspended",
    "organization.reactivated",
    "organization.quotas_set",
    "organization.member_added",
    "organization.member_joined",
    "organization.member_role_changed",
    "organization.member_removed",
];

/// The row as it stands right after creation; over a row that folded it already (a replay),
/// nothing. The founder's membership comes from its own `member_added` event.
const CREATE: &str = "
INSERT INTO organizations (org_id, name, suspended, created_at, version) VALUES ($1, $2, false, $3, $4)
ON CONFLICT (org_id) DO UPDATE
   SET name = EXCLUDED.name, suspended = false, created_at = EXCLUDED.created_at, version = EXCLUDED.version
 WHERE organizations.version < EXCLUDED.version";
const RENAME: &str = "UPDATE organizations SET name = $2, version = $3 WHERE org_id = $1 AND version < $3";
const SET_SUSPENDED: &str =
    "UPDATE organizations SET suspended = $2, version = $3 WHERE org_id = $1 AND version < $3";
const SET_QUOTAS: &str = "
UPDATE organizations SET tokens_per_month = $2, concurrent_runs = $3, requests_per_minute = $4, version = $5
 WHERE org_id = $1 AND version < $5";

/// The membership statements first move their organization's version (`$2`) and then act only
/// if it moved: a removed member's row is gone, so the organization's version is what remembers
/// that a replayed `member_added` is old. Every membership event is an organization event, so
/// the organization's row exists (created at sequence 1) and its version orders them.
const ADD_MEMBER: &str = "
WITH advanced AS (UPDATE organizations SET version = $2 WHERE org_id = $1 AND version < $2 RETURNING org_id)
INSERT INTO memberships (org_id, user_id, role, added_at) SELECT org_id, $3, $4, $5 FROM advanced
ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role, added_at = EXCLUDED.added_at";
const CHANGE_ROLE: &str = "
WITH advanced AS (UPDATE organizations SET version = $2 WHERE org_id = $1 AND version < $2 RETURNING org_id)
UPDATE memberships m SET role = $4 FROM advanced a WHERE m.org_id = a.org_id AND m.user_id = $3";
const REMOVE_MEMBER: &str = "
WITH advanced AS (UPDATE organizations SET version = $2 WHERE org_id = $1 AND version < $2 RETURNING org_id)
DELETE FROM memberships m USING advanced a WHERE m.org_id = a.org_id AND m.user_id = $3";

/// A limit as Postgres stores it; the domain keeps limits far below `i32::MAX`.
fn as_integer(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Folds one organization event of [`FOLDS`].
pub(super) async fn apply(connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let org_id = aggregate_uuid(event)?;
    let sequence = event.sequence;
    let query = match payload::<OrganizationEvent>(event)? {
        OrganizationEvent::Created { name, .. } => sqlx::query(CREATE)
            .bind(org_id)
            .bind(name)
            .bind(recorded_at(event)?)
            .bind(sequence),
        OrganizationEvent::Renamed { name } => sqlx::query(RENAME).bind(org_id).bind(name).bind(sequence),
        OrganizationEvent::Suspended { .. } => {
            sqlx::query(SET_SUSPENDED).bind(org_id).bind(true).bind(sequence)
        }
        OrganizationEvent::Reactivated => sqlx::query(SET_SUSPENDED).bind(org_id).bind(false).bind(sequence),
        OrganizationEvent::QuotasSet {
            tokens_per_month,
            concurrent_runs,
            requests_per_minute,
        } => sqlx::query(SET_QUOTAS)
            .bind(org_id)
            .bind(tokens_per_month.map(as_bigint))
            .bind(concurrent_runs.map(as_integer))
            .bind(requests_per_minute.map(as_integer))
            .bind(sequence),
        OrganizationEvent::MemberAdded { user_id, role }
        | OrganizationEvent::MemberJoined { user_id, role, .. } => sqlx::query(ADD_MEMBER)
            .bind(org_id)
            .bind(sequence)
            .bind(user_id)
            .bind(role.as_str())
            .bind(recorded_at(event)?),
        OrganizationEvent::MemberRoleChanged { user_id, role } => sqlx::query(CHANGE_ROLE)
            .bind(org_id)
            .bind(sequence)
            .bind(user_id)
            .bind(role.as_str()),
        OrganizationEvent::MemberRemoved { user_id } => sqlx::query(REMOVE_MEMBER)
            .bind(org_id)
            .bind(sequence)
            .bind(user_id),
    };
    query.execute(connection).await?;
    Ok(())
}
