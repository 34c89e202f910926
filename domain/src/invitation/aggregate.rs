//! The invitation aggregate: state, decisions and how events change the state.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{InvitationCommand, InvitationError, InvitationEvent};
use crate::email::EmailAddress;
use crate::role::Role;
use crate::secret::TokenDigest;
use crate::sink::write_all;

type Decision = Result<Vec<InvitationEvent>, InvitationError>;

/// One invitation (the aggregate id is the invitation id, the first part of its token).
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct Invitation {
    sent: Option<Sent>,
    accepted_by: Option<Uuid>,
}

/// What was sent, and to whom.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
struct Sent {
    org_id: Uuid,
    email: EmailAddress,
    role: Role,
    token_hash: TokenDigest,
    expires_at: DateTime<Utc>,
    invited_by: Uuid,
}

impl Invitation {
    /// Whether `SendInvitation` has happened.
    pub fn exists(&self) -> bool {
        self.sent.is_some()
    }

    /// The organization to join, once sent.
    pub fn org_id(&self) -> Option<Uuid> {
        self.sent.as_ref().map(|sent| sent.org_id)
    }

    /// The role the invitee gets, once sent.
    pub fn role(&self) -> Option<Role> {
        self.sent.as_ref().map(|sent| sent.role)
    }

    /// The member who invited, once sent.
    pub fn invited_by(&self) -> Option<Uuid> {
        self.sent.as_ref().map(|sent| sent.invited_by)
    }

    /// Whether `user_email` may accept with `token_hash` at `now`, checked in the order that
    /// tells a guesser least: the token first (a wrong one learns nothing more), then whether
    /// it is spent, then expiry, then the addressee.
    pub fn check_acceptance(
        &self,
        token_hash: &TokenDigest,
        user_email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<(), InvitationError> {
        let sent = self.sent.as_ref().ok_or(InvitationError::TokenInvalid)?;
        if sent.token_hash != *token_hash {
            return Err(InvitationError::TokenInvalid);
        }
        if self.accepted_by.is_some() {
            return Err(InvitationError::AlreadyAccepted);
        }
        if now >= sent.expires_at {
            return Err(InvitationError::Expired);
        }
        if sent.email != *user_email {
            return Err(InvitationError::ForAnotherAddress);
        }
        Ok(())
    }

    fn send(&self, sent: Sent) -> Decision {
        if self.exists() {
            return Err(InvitationError::AlreadySent);
        }
        Ok(vec![InvitationEvent::Sent {
            org_id: sent.org_id,
            email: sent.email,
            role: sent.role,
            token_hash: sent.token_hash,
            expires_at: sent.expires_at,
            invited_by: sent.invited_by,
        }])
    }

    fn accept(
        &self,
        token_hash: &TokenDigest,
        user_id: Uuid,
        user_email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Decision {
        self.check_acceptance(token_hash, user_email, now)?;
        Ok(vec![InvitationEvent::Accepted { user_id }])
    }
}

impl Aggregate for Invitation {
    const TYPE: &'static str = "invitation";
    type Command = InvitationCommand;
    type Event = InvitationEvent;
    type Error = InvitationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use InvitationCommand as C;
        let events = match command {
            C::SendInvitation {
                org_id,
                email,
                role,
                token_hash,
                expires_at,
                invited_by,
            } => self.send(Sent {
                org_id,
                email,
                role,
                token_hash,
                expires_at,
                invited_by,
            })?,
            C::AcceptInvitation {
                token_hash,
                user_id,
                user_email,
                now,
            } => self.accept(&token_hash, user_id, &user_email, now)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            InvitationEvent::Sent {
                org_id,
                email,
                role,
                token_hash,
                expires_at,
                invited_by,
            } => {
                self.sent = Some(Sent {
                    org_id,
                    email,
                    role,
                    token_hash,
                    expires_at,
                    invited_by,
                });
            }
            InvitationEvent::Accepted { user_id } => self.accepted_by = Some(user_id),
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
    use InvitationCommand as C;
    use InvitationEvent as E;

    fn invitation() -> TestFramework<Invitation> {
        TestFramework::with(())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap()
    }

    fn cfo() -> EmailAddress {
        EmailAddress::parse("cfo@target.example").unwrap()
    }

    fn sent() -> E {
        E::Sent {
            org_id: Uuid::nil(),
            email: cfo(),
            role: Role::Admin,
            token_hash: "t1".into(),
            expires_at: now() + TimeDelta::days(7),
            invited_by: Uuid::nil(),
        }
    }

    fn accept(token: &str, email: EmailAddress, at: DateTime<Utc>) -> C {
        C::AcceptInvitation {
            token_hash: token.into(),
            user_id: Uuid::nil(),
            user_email: email,
            now: at,
        }
    }

    #[test]
    fn the_invitee_accepts_with_the_mailed_token() {
        invitation()
            .given(vec![sent()])
            .when(accept("t1", cfo(), now()))
            .then_expect_events(vec![E::Accepted { user_id: Uuid::nil() }]);
    }

    #[test]
    fn an_invitation_works_only_once() {
        invitation()
            .given(vec![sent(), E::Accepted { user_id: Uuid::nil() }])
            .when(accept("t1", cfo(), now()))
            .then_expect_error(InvitationError::AlreadyAccepted);
    }

    #[test]
    fn a_wrong_token_is_invalid_even_for_the_right_address() {
        invitation()
            .given(vec![sent()])
            .when(accept("t2", cfo(), now()))
            .then_expect_error(InvitationError::TokenInvalid);
    }

    #[test]
    fn an_unknown_invitation_is_invalid() {
        invitation()
            .given_no_previous_events()
            .when(accept("t1", cfo(), now()))
            .then_expect_error(InvitationError::TokenInvalid);
    }

    #[test]
    fn an_invitation_at_its_expiry_time_is_expired() {
        invitation()
            .given(vec![sent()])
            .when(accept("t1", cfo(), now() + TimeDelta::days(7)))
            .then_expect_error(InvitationError::Expired);
    }

    #[test]
    fn another_address_cannot_accept_even_with_the_token() {
        let other = EmailAddress::parse("attacker@example.com").unwrap();
        invitation()
            .given(vec![sent()])
            .when(accept("t1", other, now()))
            .then_expect_error(InvitationError::ForAnotherAddress);
    }

    #[test]
    fn an_invitation_cannot_be_sent_twice() {
        let send = C::SendInvitation {
            org_id: Uuid::nil(),
            email: cfo(),
            role: Role::Member,
            token_hash: "t3".into(),
            expires_at: now(),
            invited_by: Uuid::nil(),
        };
        invitation()
            .given(vec![sent()])
            .when(send)
            .then_expect_error(InvitationError::AlreadySent);
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type_and_debug_hides_the_digest() {
        for event in [sent(), E::Accepted { user_id: Uuid::nil() }] {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
        assert!(format!("{:?}", sent()).contains("<redacted>"));
    }
}
