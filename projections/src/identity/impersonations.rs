//! The `impersonations` table, from impersonation events.

use domain::impersonation::ImpersonationEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::{aggregate_uuid, payload, recorded_at};

/// The impersonation event types this table folds.
pub(super) const FOLDS: &[&str] = &["impersonation.started", "impersonation.ended"];

/// The row right after the start; over a row that folded it already (a replay), nothing: a
/// replayed start must not revive an ended impersonation.
const START: &str = "
INSERT INTO impersonations
       (impersonation_id, user_id, admin_user_id, org_id, started_at, expires_at, ended_at, version)
VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)
ON CONFLICT (impersonation_id) DO UPDATE
   SET user_id = EXCLUDED.user_id, admin_user_id = EXCLUDED.admin_user_id,
       org_id = EXCLUDED.org_id, started_at = EXCLUDED.started_at,
       expires_at = EXCLUDED.expires_at, ended_at = NULL, version = EXCLUDED.version
 WHERE impersonations.version < EXCLUDED.version";
const END: &str =
    "UPDATE impersonations SET ended_at = $2, version = $3 WHERE impersonation_id = $1 AND version < $3";

/// Folds one impersonation event of [`FOLDS`].
pub(super) async fn apply(connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let impersonation_id = aggregate_uuid(event)?;
    let query = match payload::<ImpersonationEvent>(event)? {
        ImpersonationEvent::Started {
            admin_user_id,
            user_id,
            org_id,
            started_at,
            expires_at,
            ..
        } => sqlx::query(START)
            .bind(impersonation_id)
            .bind(user_id)
            .bind(admin_user_id)
            .bind(org_id)
            .bind(started_at)
            .bind(expires_at)
            .bind(event.sequence),
        ImpersonationEvent::Ended => sqlx::query(END)
            .bind(impersonation_id)
            .bind(recorded_at(event)?)
            .bind(event.sequence),
    };
    query.execute(connection).await?;
    Ok(())
}
