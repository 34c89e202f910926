//! The impersonation aggregate: state, decisions and how events change the state.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ImpersonationCommand, ImpersonationError, ImpersonationEvent};
use crate::sink::write_all;
use crate::text::{TextError, trimmed};

/// The longest an impersonation may last: long enough to reproduce a support case, short
/// enough that a forgotten one closes itself.
pub const MAX_DURATION: TimeDelta = TimeDelta::hours(1);
/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

type Decision = Result<Vec<ImpersonationEvent>, ImpersonationError>;

/// One bounded period of an administrator acting as a user (the aggregate id is the
/// impersonation id, carried in the impersonation token so that events written under it
/// can record both people).
#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Impersonation {
    admin_user_id: Option<Uuid>,
    user_id: Option<Uuid>,
    org_id: Option<Uuid>,
    reason: String,
    expires_at: Option<DateTime<Utc>>,
    ended: bool,
}

/// The parts of `StartImpersonation` checked together.
struct Request {
    admin_user_id: Uuid,
    user_id: Uuid,
    org_id: Uuid,
    reason: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
}

impl Impersonation {
    /// Whether `StartImpersonation` has happened.
    pub fn exists(&self) -> bool {
        self.admin_user_id.is_some()
    }

    /// The administrator.
    pub fn admin_user_id(&self) -> Option<Uuid> {
        self.admin_user_id
    }

    /// The user impersonated.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The organization.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// The stated reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When it stops.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// Whether tokens of this impersonation are still good at `now`: started, not ended,
    /// not expired.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        !self.ended && self.expires_at.is_some_and(|at| now < at)
    }

    fn start(&self, request: Request) -> Decision {
        if self.exists() {
            return Err(ImpersonationError::AlreadyStarted);
        }
        if request.admin_user_id == request.user_id {
            return Err(ImpersonationError::CannotImpersonateSelf);
        }
        let reason = trimmed(&request.reason, MAX_REASON_CHARS, false).map_err(|e| match e {
            TextError::Empty => ImpersonationError::EmptyReason,
            TextError::TooLong => ImpersonationError::ReasonTooLong {
                max: MAX_REASON_CHARS,
            },
        })?;
        if request.expires_at <= request.now {
            return Err(ImpersonationError::ExpiryNotInFuture);
        }
        if request.expires_at - request.now > MAX_DURATION {
            return Err(ImpersonationError::ExpiryTooFar {
                max_minutes: MAX_DURATION.num_minutes(),
            });
        }
        Ok(vec![ImpersonationEvent::Started {
            admin_user_id: request.admin_user_id,
            user_id: request.user_id,
            org_id: request.org_id,
            reason,
            started_at: request.now,
            expires_at: request.expires_at,
        }])
    }

    fn end(&self) -> Decision {
        if !self.exists() {
            return Err(ImpersonationError::NotFound);
        }
        if self.ended {
            return Err(ImpersonationError::AlreadyEnded);
        }
        Ok(vec![ImpersonationEvent::Ended])
    }
}

impl Aggregate for Impersonation {
    const TYPE: &'static str = "impersonation";
    type Command = ImpersonationCommand;
    type Event = ImpersonationEvent;
    type Error = ImpersonationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            ImpersonationCommand::StartImpersonation {
                admin_user_id,
                user_id,
                org_id,
                reason,
                expires_at,
                now,
            } => self.start(Request {
                admin_user_id,
                user_id,
                org_id,
                reason,
                expires_at,
                now,
            })?,
            ImpersonationCommand::EndImpersonation => self.end()?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ImpersonationEvent::Started {
                admin_user_id,
                user_id,
                org_id,
                reason,
                expires_at,
                ..
            } => {
                self.admin_user_id = Some(admin_user_id);
                self.user_id = Some(user_id);
                self.org_id = Some(org_id);
                self.reason = reason;
                self.expires_at = Some(expires_at);
            }
            ImpersonationEvent::Ended => self.ended = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;
    use ImpersonationCommand as C;
    use ImpersonationEvent as E;

    const ADMIN: Uuid = Uuid::from_u128(1);
    const USER: Uuid = Uuid::from_u128(2);
    const ORG: Uuid = Uuid::from_u128(3);

    fn impersonation() -> TestFramework<Impersonation> {
        TestFramework::with(())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
    }

    fn start(reason: &str, lasting: TimeDelta) -> C {
        C::StartImpersonation {
            admin_user_id: ADMIN,
            user_id: USER,
            org_id: ORG,
            reason: reason.into(),
            expires_at: now() + lasting,
            now: now(),
        }
    }

    fn started(lasting: TimeDelta) -> E {
        E::Started {
            admin_user_id: ADMIN,
            user_id: USER,
            org_id: ORG,
            reason: "ticket 42".into(),
            started_at: now(),
            expires_at: now() + lasting,
        }
    }

    #[test]
    fn starting_records_both_people_the_reason_and_the_limit() {
        impersonation()
            .given_no_previous_events()
            .when(start("  ticket 42 ", TimeDelta::minutes(15)))
            .then_expect_events(vec![started(TimeDelta::minutes(15))]);
    }

    #[test]
    fn exactly_one_hour_is_allowed() {
        impersonation()
            .given_no_previous_events()
            .when(start("ticket 42", MAX_DURATION))
            .then_expect_events(vec![started(MAX_DURATION)]);
    }

    #[test]
    fn more_than_one_hour_is_rejected() {
        impersonation()
            .given_no_previous_events()
            .when(start("ticket 42", MAX_DURATION + TimeDelta::seconds(1)))
            .then_expect_error(ImpersonationError::ExpiryTooFar { max_minutes: 60 });
    }

    #[test]
    fn an_expiry_not_after_now_is_rejected() {
        impersonation()
            .given_no_previous_events()
            .when(start("ticket 42", TimeDelta::zero()))
            .then_expect_error(ImpersonationError::ExpiryNotInFuture);
    }

    #[test]
    fn a_blank_reason_is_rejected() {
        impersonation()
            .given_no_previous_events()
            .when(start(" \n", TimeDelta::minutes(5)))
            .then_expect_error(ImpersonationError::EmptyReason);
    }

    #[test]
    fn a_reason_over_500_characters_is_rejected() {
        impersonation()
            .given_no_previous_events()
            .when(start(&"r".repeat(501), TimeDelta::minutes(5)))
            .then_expect_error(ImpersonationError::ReasonTooLong { max: 500 });
    }

    #[test]
    fn an_administrator_cannot_impersonate_themself() {
        let mut cmd = start("ticket 42", TimeDelta::minutes(5));
        if let C::StartImpersonation { user_id, .. } = &mut cmd {
            *user_id = ADMIN;
        }
        impersonation()
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(ImpersonationError::CannotImpersonateSelf);
    }

    #[test]
    fn an_impersonation_cannot_be_started_twice() {
        impersonation()
            .given(vec![started(TimeDelta::minutes(5))])
            .when(start("ticket 42", TimeDelta::minutes(5)))
            .then_expect_error(ImpersonationError::AlreadyStarted);
    }

    #[test]
    fn ending_records_the_end() {
        impersonation()
            .given(vec![started(TimeDelta::minutes(5))])
            .when(C::EndImpersonation)
            .then_expect_events(vec![E::Ended]);
    }

    #[test]
    fn an_impersonation_cannot_be_ended_twice() {
        impersonation()
            .given(vec![started(TimeDelta::minutes(5)), E::Ended])
            .when(C::EndImpersonation)
            .then_expect_error(ImpersonationError::AlreadyEnded);
    }

    #[test]
    fn ending_an_impersonation_never_started_is_not_found() {
        impersonation()
            .given_no_previous_events()
            .when(C::EndImpersonation)
            .then_expect_error(ImpersonationError::NotFound);
    }

    #[test]
    fn an_impersonation_is_active_until_it_expires_or_ends() {
        let mut state = Impersonation::default();
        state.apply(started(TimeDelta::minutes(5)));
        assert!(state.is_active_at(now() + TimeDelta::minutes(4)));
        assert!(!state.is_active_at(now() + TimeDelta::minutes(5)));
        state.apply(E::Ended);
        assert!(!state.is_active_at(now()));
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        for event in [started(TimeDelta::minutes(5)), E::Ended] {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
    }
}
