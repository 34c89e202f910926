//! The session aggregate: state, decisions and how events change the state.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RevocationReason, SessionCommand, SessionError, SessionEvent};
use crate::secret::TokenDigest;
use crate::sink::write_all;

type Decision = Result<Vec<SessionEvent>, SessionError>;

/// What a `RefreshSession` asks for besides the presented token.
struct Rotation {
    new_hash: TokenDigest,
    new_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    repeat_grace: TimeDelta,
}

/// One sign-in's family of refresh tokens (the aggregate id is the family id).
///
/// Only the current token may be refreshed; every earlier one is kept as spent, so that
/// presenting one again is recognised as theft and ends the family. `Debug` is written by
/// hand so that digests never reach logs.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct Session {
    user_id: Option<Uuid>,
    org_id: Option<Uuid>,
    token_hash: TokenDigest,
    expires_at: Option<DateTime<Utc>>,
    credential_version: u64,
    spent_hashes: Vec<TokenDigest>,
    /// When the current token replaced the last spent one (`None`: never rotated, or rotated
    /// before the time was recorded).
    #[serde(default)]
    refreshed_at: Option<DateTime<Utc>>,
    revocation: Option<RevocationReason>,
}

impl Session {
    /// The user's credential version when the session started: the application ends the
    /// session when the user's current version is newer (the password changed since).
    pub fn credential_version(&self) -> u64 {
        self.credential_version
    }

    /// Whether `StartSession` has happened.
    pub fn exists(&self) -> bool {
        self.user_id.is_some()
    }

    /// Who signed in.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The organization the session's access tokens are for.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// When the current refresh token stops working.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// Whether the family has ended; after a refresh the application checks this, because
    /// a detected reuse succeeds as a command (to record the revocation) but must answer 401.
    pub fn is_revoked(&self) -> bool {
        self.revocation.is_some()
    }

    /// Why the family ended, if it did.
    pub fn revocation_reason(&self) -> Option<RevocationReason> {
        self.revocation
    }

    /// When the current refresh token was issued by a rotation; the application mints the
    /// access token of that rotation from it, so a repeat within the grace window gets the
    /// very same pair.
    pub fn refreshed_at(&self) -> Option<DateTime<Utc>> {
        self.refreshed_at
    }

    fn start(
        &self,
        user_id: Uuid,
        org_id: Option<Uuid>,
        token_hash: TokenDigest,
        expires_at: DateTime<Utc>,
        credential_version: u64,
    ) -> Decision {
        if self.exists() {
            return Err(SessionError::AlreadyStarted);
        }
        Ok(vec![SessionEvent::Started {
            user_id,
            org_id,
            token_hash,
            expires_at,
            credential_version,
        }])
    }

    /// Rotates on the current token; revokes the family on a spent one (`now >= expires_at`
    /// is expired).
    fn refresh(&self, presented: &TokenDigest, rotation: Rotation) -> Decision {
        self.require_live()?;
        if *presented == self.token_hash {
            if self.expires_at.is_none_or(|at| rotation.now >= at) {
                return Err(SessionError::Expired);
            }
            return Ok(vec![SessionEvent::Refreshed {
                token_hash: rotation.new_hash,
                expires_at: rotation.new_expires_at,
                refreshed_at: Some(rotation.now),
            }]);
        }
        if self.is_repeat_within_grace(presented, &rotation) {
            return Ok(vec![]);
        }
        if self.spent_hashes.contains(presented) {
            return Ok(vec![SessionEvent::Revoked {
                reason: RevocationReason::ReuseDetected,
            }]);
        }
        Err(SessionError::InvalidToken)
    }

    /// The token spent by the latest rotation, presented again within the grace window, asking
    /// for exactly the successor that rotation recorded (the application derives successors
    /// from the presented token, so a genuine repeat asks for the same one). Only the latest
    /// spent token qualifies: once its successor has itself been spent, or after the window,
    /// a repeat is reuse and revokes the family.
    fn is_repeat_within_grace(&self, presented: &TokenDigest, rotation: &Rotation) -> bool {
        self.spent_hashes.last() == Some(presented)
            && rotation.new_hash == self.token_hash
            && self
                .refreshed_at
                .is_some_and(|at| rotation.now < at + rotation.repeat_grace)
            && self.expires_at.is_some_and(|at| rotation.now < at)
    }

    fn end(&self, reason: RevocationReason) -> Decision {
        self.require_live()?;
        Ok(vec![SessionEvent::Revoked { reason }])
    }

    fn require_live(&self) -> Result<(), SessionError> {
        if !self.exists() {
            return Err(SessionError::NotFound);
        }
        if self.is_revoked() {
            return Err(SessionError::Revoked);
        }
        Ok(())
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use SessionCommand as C;
        let events = match command {
            C::StartSession {
                user_id,
                org_id,
                token_hash,
                expires_at,
                credential_version,
            } => self.start(user_id, org_id, token_hash, expires_at, credential_version)?,
            C::RefreshSession {
                presented_hash,
                new_hash,
                new_expires_at,
                now,
                repeat_grace,
            } => {
                let rotation = Rotation {
                    new_hash,
                    new_expires_at,
                    now,
                    repeat_grace,
                };
                self.refresh(&presented_hash, rotation)?
            }
            C::EndSession { reason } => self.end(reason)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SessionEvent::Started {
                user_id,
                org_id,
                token_hash,
                expires_at,
                credential_version,
            } => {
                self.user_id = Some(user_id);
                self.org_id = org_id;
                self.token_hash = token_hash;
                self.expires_at = Some(expires_at);
                self.credential_version = credential_version;
            }
            SessionEvent::Refreshed {
                token_hash,
                expires_at,
                refreshed_at,
            } => {
                let spent = std::mem::replace(&mut self.token_hash, token_hash);
                self.spent_hashes.push(spent);
                self.expires_at = Some(expires_at);
                self.refreshed_at = refreshed_at;
            }
            SessionEvent::Revoked { reason } => self.revocation = Some(reason),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;
    use SessionCommand as C;
    use SessionEvent as E;

    fn session() -> TestFramework<Session> {
        TestFramework::with(())
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
    }

    fn days(n: i64) -> DateTime<Utc> {
        t0() + TimeDelta::days(n)
    }

    fn started() -> E {
        E::Started {
            user_id: Uuid::from_u128(1),
            org_id: Some(Uuid::from_u128(2)),
            token_hash: "h1".into(),
            expires_at: days(30),
            credential_version: 0,
        }
    }

    /// A rotation made at `expires_at` less 30 days (as [`refresh`] makes them).
    fn refreshed(hash: &str, expires_at: DateTime<Utc>) -> E {
        E::Refreshed {
            token_hash: hash.into(),
            expires_at,
            refreshed_at: Some(expires_at - TimeDelta::days(30)),
        }
    }

    fn refresh(presented: &str, new: &str, now: DateTime<Utc>) -> C {
        C::RefreshSession {
            presented_hash: presented.into(),
            new_hash: new.into(),
            new_expires_at: now + TimeDelta::days(30),
            now,
            repeat_grace: TimeDelta::seconds(10),
        }
    }

    #[test]
    fn the_spent_token_again_within_the_grace_asking_for_the_same_successor_records_nothing() {
        let rotated_at = days(1);
        session()
            .given(vec![started(), refreshed("h2", days(31))])
            .when(refresh("h1", "h2", rotated_at + TimeDelta::seconds(9)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_spent_token_again_after_the_grace_revokes_the_family() {
        session()
            .given(vec![started(), refreshed("h2", days(31))])
            .when(refresh("h1", "h2", days(1) + TimeDelta::seconds(10)))
            .then_expect_events(vec![E::Revoked {
                reason: RevocationReason::ReuseDetected,
            }]);
    }

    #[test]
    fn the_spent_token_within_the_grace_asking_for_another_successor_revokes_the_family() {
        session()
            .given(vec![started(), refreshed("h2", days(31))])
            .when(refresh("h1", "h9", days(1) + TimeDelta::seconds(1)))
            .then_expect_events(vec![E::Revoked {
                reason: RevocationReason::ReuseDetected,
            }]);
    }

    #[test]
    fn an_older_spent_token_gets_no_grace() {
        session()
            .given(vec![started(), refreshed("h2", days(1) + TimeDelta::days(30))])
            .and(vec![refreshed("h3", days(1) + TimeDelta::days(30))])
            .when(refresh("h1", "h2", days(1) + TimeDelta::seconds(1)))
            .then_expect_events(vec![E::Revoked {
                reason: RevocationReason::ReuseDetected,
            }]);
    }

    #[test]
    fn a_rotation_recorded_without_its_time_gives_no_grace() {
        let untimed = E::Refreshed {
            token_hash: "h2".into(),
            expires_at: days(31),
            refreshed_at: None,
        };
        session()
            .given(vec![started(), untimed])
            .when(refresh("h1", "h2", days(1)))
            .then_expect_events(vec![E::Revoked {
                reason: RevocationReason::ReuseDetected,
            }]);
    }

    fn start() -> C {
        C::StartSession {
            user_id: Uuid::from_u128(1),
            org_id: Some(Uuid::from_u128(2)),
            token_hash: "h1".into(),
            expires_at: days(30),
            credential_version: 0,
        }
    }

    #[test]
    fn starting_records_user_org_and_first_token() {
        session()
            .given_no_previous_events()
            .when(start())
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn a_session_cannot_be_started_twice() {
        session()
            .given(vec![started()])
            .when(start())
            .then_expect_error(SessionError::AlreadyStarted);
    }

    #[test]
    fn refreshing_with_the_current_token_rotates_it() {
        session()
            .given(vec![started()])
            .when(refresh("h1", "h2", days(1)))
            .then_expect_events(vec![refreshed("h2", days(31))]);
    }

    #[test]
    fn presenting_a_spent_token_revokes_the_whole_family() {
        session()
            .given(vec![
                started(),
                refreshed("h2", days(31)),
                refreshed("h3", days(32)),
            ])
            .when(refresh("h1", "h9", days(2)))
            .then_expect_events(vec![E::Revoked {
                reason: RevocationReason::ReuseDetected,
            }]);
    }

    #[test]
    fn after_reuse_the_state_tells_the_application_to_refuse() {
        let mut state = Session::default();
        for event in [started(), refreshed("h2", days(31))] {
            state.apply(event);
        }
        state.apply(E::Revoked {
            reason: RevocationReason::ReuseDetected,
        });
        assert!(state.is_revoked());
        assert_eq!(state.revocation_reason(), Some(RevocationReason::ReuseDetected));
    }

    #[test]
    fn any_token_of_a_revoked_family_is_refused() {
        session()
            .given(vec![started(), refreshed("h2", days(31))])
            .and(vec![E::Revoked {
                reason: RevocationReason::ReuseDetected,
            }])
            .when(refresh("h2", "h3", days(2)))
            .then_expect_error(SessionError::Revoked);
    }

    #[test]
    fn the_current_token_at_its_expiry_time_is_expired() {
        session()
            .given(vec![started()])
            .when(refresh("h1", "h2", days(30)))
            .then_expect_error(SessionError::Expired);
    }

    #[test]
    fn a_token_never_issued_in_the_family_is_invalid() {
        session()
            .given(vec![started()])
            .when(refresh("forged", "h2", days(1)))
            .then_expect_error(SessionError::InvalidToken);
    }

    #[test]
    fn refreshing_a_session_never_started_is_not_found() {
        session()
            .given_no_previous_events()
            .when(refresh("h1", "h2", days(1)))
            .then_expect_error(SessionError::NotFound);
    }

    #[test]
    fn logging_out_revokes_the_family() {
        session()
            .given(vec![started()])
            .when(C::EndSession {
                reason: RevocationReason::Logout,
            })
            .then_expect_events(vec![E::Revoked {
                reason: RevocationReason::Logout,
            }]);
    }

    #[test]
    fn ending_a_revoked_session_is_refused() {
        session()
            .given(vec![
                started(),
                E::Revoked {
                    reason: RevocationReason::Logout,
                },
            ])
            .when(C::EndSession {
                reason: RevocationReason::Logout,
            })
            .then_expect_error(SessionError::Revoked);
    }

    #[test]
    fn debug_output_never_shows_a_token_hash() {
        let mut state = Session::default();
        state.apply(started());
        let printed = format!("{state:?} {:?} {:?}", started(), refresh("h1", "h2", t0()));
        assert!(!printed.contains("\"h1\"") && !printed.contains("\"h2\""));
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        let events = [
            started(),
            refreshed("h2", days(1)),
            E::Revoked {
                reason: RevocationReason::Expired,
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
    }
}
