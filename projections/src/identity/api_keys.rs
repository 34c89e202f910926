//! The `api_keys` table, from API key events.
//!
//! `last_used_at` is never written here: the auth guard stamps it, and the upserts below leave
//! it alone.

use domain::api_key::ApiKeyEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::{aggregate_uuid, payload, recorded_at};

/// The API key event types this table folds.
pub(super) const FOLDS: &[&str] = &["api_key.created", "api_key.revoked"];

/// The row as it stands right after creation. Over an existing row it changes something only if
/// the row has not folded this event yet: a replayed creation must not un-revoke the key.
const CREATE: &str = "
INSERT INTO api_keys (key_id, org_id, name, prefix, key_hash, created_by, created_at, revoked_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)
ON CONFLICT (key_id) DO UPDATE
   SET org_id = EXCLUDED.org_id, name = EXCLUDED.name, prefix = EXCLUDED.prefix,
       key_hash = EXCLUDED.key_hash, created_by = EXCLUDED.created_by,
       created_at = EXCLUDED.created_at, revoked_at = NULL, version = EXCLUDED.version
 WHERE api_keys.version < EXCLUDED.version";
const REVOKE: &str = "UPDATE api_keys SET revoked_at = $2, version = $3 WHERE key_id = $1 AND version < $3";

/// Folds one API key event of [`FOLDS`].
pub(super) async fn apply(connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let key_id = aggregate_uuid(event)?;
    let query = match payload::<ApiKeyEvent>(event)? {
        ApiKeyEvent::Created {
            org_id,
            name,
            prefix,
            key_hash,
            created_by,
        } => sqlx::query(CREATE)
            .bind(key_id)
            .bind(org_id)
            .bind(name)
            .bind(prefix)
            .bind(key_hash.as_str().to_owned())
            .bind(created_by.to_string())
            .bind(recorded_at(event)?)
            .bind(event.sequence),
        ApiKeyEvent::Revoked { .. } => sqlx::query(REVOKE)
            .bind(key_id)
            .bind(recorded_at(event)?)
            .bind(event.sequence),
    };
    query.execute(connection).await?;
    Ok(())
}
