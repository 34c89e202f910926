//! The `users` table, from user events.

use domain::user::UserEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::{aggregate_uuid, payload, recorded_at};

/// The user event types this table folds.
pub(super) const FOLDS: &[&str] = &[
    "user.registered",
    "user.password_changed",
    "user.password_reset_completed",
    "user.promoted_to_platform_admin",
];

/// The row as it stands right after registration. Over an existing row it changes something
/// only if the row has not folded this event yet (see the module docs of `identity`): a replayed
/// registration must not bring back the first password digest.
const REGISTER: &str = "
INSERT INTO users (user_id, email, password_hash, is_platform_admin, registered_at, version)
VALUES ($1, $2, $3, false, $4, $5)
ON CONFLICT (user_id) DO UPDATE
   SET email = EXCLUDED.email, password_hash = EXCLUDED.password_hash,
       is_platform_admin = false, registered_at = EXCLUDED.registered_at, version = EXCLUDED.version
 WHERE users.version < EXCLUDED.version";
const SET_PASSWORD: &str =
    "UPDATE users SET password_hash = $2, version = $3 WHERE user_id = $1 AND version < $3";
const PROMOTE: &str =
    "UPDATE users SET is_platform_admin = true, version = $2 WHERE user_id = $1 AND version < $2";

/// Folds one user event of [`FOLDS`].
pub(super) async fn apply(connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let user_id = aggregate_uuid(event)?;
    let query = match payload::<UserEvent>(event)? {
        UserEvent::Registered { email, password_hash } => sqlx::query(REGISTER)
            .bind(user_id)
            .bind(email.as_str().to_owned())
            .bind(password_hash.as_str().to_owned())
            .bind(recorded_at(event)?)
            .bind(event.sequence),
        UserEvent::PasswordChanged { password_hash }
        | UserEvent::PasswordResetCompleted { password_hash } => sqlx::query(SET_PASSWORD)
            .bind(user_id)
            .bind(password_hash.as_str().to_owned())
            .bind(event.sequence),
        UserEvent::PromotedToPlatformAdmin => sqlx::query(PROMOTE).bind(user_id).bind(event.sequence),
        // Not in FOLDS; the table keeps no reset or verification tokens, and whether an email
        // is verified is read from the user aggregate (which decides what it allows).
        UserEvent::PasswordResetRequested { .. }
        | UserEvent::EmailVerificationRequested { .. }
        | UserEvent::EmailVerified { .. } => return Ok(()),
    };
    query.execute(connection).await?;
    Ok(())
}
