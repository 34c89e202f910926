//! Commands of the impersonation aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a caller asks of an impersonation. That the caller is a platform administrator is
/// checked by the application before the command is sent.
#[derive(Clone, Debug, PartialEq)]
pub enum ImpersonationCommand {
    /// Begin acting as `user_id` in `org_id`.
    StartImpersonation {
        /// The platform administrator.
        admin_user_id: Uuid,
        /// The user impersonated.
        user_id: Uuid,
        /// The organization the impersonation token is for.
        org_id: Uuid,
        /// Why; trimmed, 1 to 500 characters.
        reason: String,
        /// When it stops, after `now` and at most [`super::MAX_DURATION`] later.
        expires_at: DateTime<Utc>,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
    /// Stop before the time limit.
    EndImpersonation,
}
