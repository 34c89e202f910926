//! The `sessions` table, from session (refresh-token family) events.

use domain::session::SessionEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::{aggregate_uuid, payload, recorded_at};

/// The session event types this table folds (rotations change nothing it answers).
pub(super) const FOLDS: &[&str] = &["session.started", "session.revoked"];

/// The row right after the start; over a row that folded it already (a replay), nothing: a
/// replayed start must not revive a revoked session.
const START: &str = "
INSERT INTO sessions (session_id, user_id, org_id, started_at, revoked_at, version)
VALUES ($1, $2, $3, $4, NULL, $5)
ON CONFLICT (session_id) DO UPDATE
   SET user_id = EXCLUDED.user_id, org_id = EXCLUDED.org_id, started_at = EXCLUDED.started_at,
       revoked_at = NULL, version = EXCLUDED.version
 WHERE sessions.version < EXCLUDED.version";
const REVOKE: &str =
    "UPDATE sessions SET revoked_at = $2, version = $3 WHERE session_id = $1 AND version < $3";

/// Folds one session event of [`FOLDS`].
pub(super) async fn apply(connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let session_id = aggregate_uuid(event)?;
    let query = match payload::<SessionEvent>(event)? {
        SessionEvent::Started { user_id, org_id, .. } => sqlx::query(START)
            .bind(session_id)
            .bind(user_id)
            .bind(org_id)
            .bind(recorded_at(event)?)
            .bind(event.sequence),
        SessionEvent::Revoked { .. } => sqlx::query(REVOKE)
            .bind(session_id)
            .bind(recorded_at(event)?)
            .bind(event.sequence),
        SessionEvent::Refreshed { .. } => return Ok(()),
    };
    query.execute(connection).await?;
    Ok(())
}
