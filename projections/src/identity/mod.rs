//! The identity read model: users, organizations, memberships, API keys, sessions and
//! impersonations.
//!
//! Folded from the user, organization and api_key events into the tables of
//! `migrations/20261125000002_identity_views.sql`, which answer sign-in, the auth guard's
//! role and suspension checks, and the member and key listings. Every write is an upsert or
//! an update keyed on the table's primary key, so replaying the log after the rows and the
//! checkpoint were deleted rebuilds the same rows. The reads of these tables live beside the
//! folds, in [`queries`].
//!
//!
//! No write ever moves a row backwards: each row keeps the `sequence` of the last event of its
//! aggregate it folded (`version`), and a write happens only for a newer event. An older event
//! delivered again after newer ones (a checkpoint moved back, a restore, a re-delivery) changes
//! nothing, so a replayed `user.registered` cannot bring back an old password digest nor a
//! replayed `api_key.created` un-revoke a key. This needs each aggregate's events in sequence
//! order, which the log follower gives (see `docs/event-store.md`). Membership rows are deleted
//! on removal, so their guard is their organization's version.

mod api_keys;
mod impersonations;
mod organizations;
pub mod queries;
mod sessions;
mod users;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::Projector;

/// The identity projector's name: its checkpoint key and `projections rebuild` argument. The
/// identity service waits on the same name for its writes to become visible.
pub const IDENTITY: &str = "identity";

/// Keeps `users`, `organizations`, `memberships`, `api_keys`, `sessions` and `impersonations`
/// up to date with the log.
///
/// Only the event types listed by each table group are read; every other event, including
/// other events of the same aggregates (a password reset request, say), is ignored without
/// looking at its payload. A folded event whose payload does not parse fails the batch (see
/// the `decode` module) rather than being skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityProjector;

#[async_trait]
impl Projector for IdentityProjector {
    fn name(&self) -> &'static str {
        IDENTITY
    }

    async fn clear(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE users, organizations, memberships, api_keys, sessions, impersonations")
            .execute(connection)
            .await?;
        Ok(())
    }

    /// Only the identity events the tables below fold: every run, conversation and billing
    /// event passes without a transaction.
    fn folds(&self, event: &RecordedEvent) -> bool {
        let event_type = event.event_type.as_str();
        [
            users::FOLDS,
            organizations::FOLDS,
            api_keys::FOLDS,
            sessions::FOLDS,
            impersonations::FOLDS,
        ]
        .iter()
        .any(|folds| folds.contains(&event_type))
    }

    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
        let event_type = event.event_type.as_str();
        if users::FOLDS.contains(&event_type) {
            users::apply(connection, event).await
        } else if organizations::FOLDS.contains(&event_type) {
            organizations::apply(connection, event).await
        } else if api_keys::FOLDS.contains(&event_type) {
            api_keys::apply(connection, event).await
        } else if sessions::FOLDS.contains(&event_type) {
            sessions::apply(connection, event).await
        } else if impersonations::FOLDS.contains(&event_type) {
            impersonations::apply(connection, event).await
        } else {
            Ok(())
        }
    }
}
