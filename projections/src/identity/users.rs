//! The `users` table, from user events.

use domain::user::UserEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use super::decode::{aggregate_uuid, payload, recorded_at};

/// The user event types this table folds.
pub(super) const FOLDS: &[&str] = &[
    "user.registered",
    "user.password_changed",
    "user.password_reset_completed",
    "user.promoted_to_platform_admin",
];

/// The row as it stands right after registration (a replay over an existing row resets it, and
/// the user's later events follow).
const REGISTER: &str = "
INSERT INTO users (user_id, email, password_hash, is_platform_admin, registered_at)
VALUES ($1, $2, $3, false, $4)
ON CONFLICT (user_id) DO UPDATE
   SET email = EXCLUDED.email, password_hash = EXCLUDED.password_hash,
       is_platform_admin = false, registered_at = EXCLUDED.registered_at";
const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE user_id = $1";
const PROMOTE: &str = "UPDATE users SET is_platform_admin = true WHERE user_id = $1";

/// Folds one user event of [`FOLDS`].
pub(super) async fn apply(connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let user_id = aggregate_uuid(event)?;
    let query = match payload::<UserEvent>(event, &event.data)? {
        UserEvent::Registered { email, password_hash } => sqlx::query(REGISTER)
            .bind(user_id)
            .bind(email.as_str().to_owned())
            .bind(password_hash)
            .bind(recorded_at(event)?),
        UserEvent::PasswordChanged { password_hash }
        | UserEvent::PasswordResetCompleted { password_hash } => {
            sqlx::query(SET_PASSWORD).bind(user_id).bind(password_hash)
        }
        UserEvent::PromotedToPlatformAdmin => sqlx::query(PROMOTE).bind(user_id),
        // Not in FOLDS; the table keeps no reset tokens.
        UserEvent::PasswordResetRequested { .. } => return Ok(()),
    };
    query.execute(connection).await?;
    Ok(())
}
