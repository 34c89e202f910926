//! The user aggregate: state, decisions and how events change the state.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{UserCommand, UserError, UserEvent};
use crate::email::EmailAddress;
use crate::secret::{PasswordDigest, TokenDigest};
use crate::sink::write_all;

type Decision = Result<Vec<UserEvent>, UserError>;

/// A person who can sign in, identified globally (the aggregate id is the user id).
///
/// Email uniqueness is not decided here but by the email claim aggregate, claimed before
/// `RegisterUser`. `Debug` is written by hand so that hashes never reach logs.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct User {
    email: Option<EmailAddress>,
    password_hash: PasswordDigest,
    pending_resets: Vec<PendingReset>,
    platform_admin: bool,
    credential_version: u64,
}

/// How many reset links may be outstanding (requested, unexpired, unused) at once. A request
/// beyond it is refused, so the mailbox gets at most this many links per link lifetime however
/// often someone asks; every outstanding link keeps working, so nobody else's request can take
/// away a link the owner already has.
pub const MAX_OUTSTANDING_RESETS: usize = 3;

/// A reset token that may still be used until it expires.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
struct PendingReset {
    token_hash: TokenDigest,
    expires_at: DateTime<Utc>,
}

impl User {
    /// Whether `RegisterUser` has happened.
    pub fn exists(&self) -> bool {
        self.email.is_some()
    }

    /// The registered email, if registered.
    pub fn email(&self) -> Option<&EmailAddress> {
        self.email.as_ref()
    }

    /// The current Argon2id PHC string, for verifying a login; `None` before registration.
    pub fn password_hash(&self) -> Option<&str> {
        self.exists().then_some(self.password_hash.as_str())
    }

    /// How many times the password has changed: sessions started at an older version are
    /// ended, so a password change or reset locks out whoever held the old credentials.
    pub fn credential_version(&self) -> u64 {
        self.credential_version
    }

    /// Whether the user may use the platform administration routes.
    pub fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }

    /// How many reset links are outstanding at `now` (requested, unexpired, unused).
    pub fn outstanding_resets(&self, now: DateTime<Utc>) -> usize {
        self.pending_resets
            .iter()
            .filter(|pending| pending.expires_at > now)
            .count()
    }

    fn require_exists(&self) -> Result<(), UserError> {
        if self.exists() {
            Ok(())
        } else {
            Err(UserError::NotFound)
        }
    }

    fn register(&self, email: EmailAddress, password_hash: PasswordDigest) -> Decision {
        if self.exists() {
            return Err(UserError::AlreadyRegistered);
        }
        Ok(vec![UserEvent::Registered { email, password_hash }])
    }

    fn change_password(&self, password_hash: PasswordDigest) -> Decision {
        self.require_exists()?;
        Ok(vec![UserEvent::PasswordChanged { password_hash }])
    }

    fn request_reset(
        &self,
        token_hash: TokenDigest,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Decision {
        self.require_exists()?;
        if self.outstanding_resets(now) >= MAX_OUTSTANDING_RESETS {
            return Err(UserError::TooManyResetRequests);
        }
        Ok(vec![UserEvent::PasswordResetRequested {
            token_hash,
            expires_at,
        }])
    }

    /// Whether `token_hash` is an outstanding reset token, unexpired at `now`: checked first
    /// when a reset is confirmed, so a wrong link learns nothing about the password rule and
    /// costs no password hash.
    pub fn check_reset_token(&self, token_hash: &TokenDigest, now: DateTime<Utc>) -> Result<(), UserError> {
        self.require_exists()?;
        let pending = self
            .pending_resets
            .iter()
            .find(|pending| pending.token_hash == *token_hash)
            .ok_or(UserError::ResetTokenInvalid)?;
        if now >= pending.expires_at {
            return Err(UserError::ResetTokenExpired);
        }
        Ok(())
    }

    /// A token works once, only while outstanding, and only before it expires (`now >=
    /// expires_at` is expired). Using one ends every other.
    fn complete_reset(
        &self,
        token_hash: &TokenDigest,
        password_hash: PasswordDigest,
        now: DateTime<Utc>,
    ) -> Decision {
        self.check_reset_token(token_hash, now)?;
        Ok(vec![UserEvent::PasswordResetCompleted { password_hash }])
    }

    fn promote(&self) -> Decision {
        self.require_exists()?;
        if self.platform_admin {
            return Err(UserError::AlreadyPlatformAdmin);
        }
        Ok(vec![UserEvent::PromotedToPlatformAdmin])
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use UserCommand as C;
        let events = match command {
            C::RegisterUser { email, password_hash } => self.register(email, password_hash)?,
            C::ChangePassword { password_hash } => self.change_password(password_hash)?,
            C::RequestPasswordReset {
                token_hash,
                expires_at,
                now,
            } => self.request_reset(token_hash, expires_at, now)?,
            C::CompletePasswordReset {
                token_hash,
                password_hash,
                now,
            } => self.complete_reset(&token_hash, password_hash, now)?,
            C::PromoteToPlatformAdmin => self.promote()?,
            C::RegisterPlatformAdmin { email, password_hash } => {
                let mut events = self.register(email, password_hash)?;
                events.push(UserEvent::PromotedToPlatformAdmin);
                events
            }
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::Registered { email, password_hash } => {
                self.email = Some(email);
                self.password_hash = password_hash;
            }
            UserEvent::PasswordChanged { password_hash }
            | UserEvent::PasswordResetCompleted { password_hash } => {
                self.password_hash = password_hash;
                self.pending_resets.clear();
                self.credential_version += 1;
            }
            UserEvent::PasswordResetRequested {
                token_hash,
                expires_at,
            } => {
                // Kept beside the earlier ones. Only the latest few can still be unexpired
                // (a request is refused while that many are), so older ones are dropped.
                self.pending_resets.push(PendingReset {
                    token_hash,
                    expires_at,
                });
                let excess = self.pending_resets.len().saturating_sub(MAX_OUTSTANDING_RESETS);
                self.pending_resets.drain(..excess);
            }
            UserEvent::PromotedToPlatformAdmin => self.platform_admin = true,
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
    use UserCommand as C;
    use UserEvent as E;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn user() -> TestFramework<User> {
        TestFramework::with(())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
    }

    fn email() -> EmailAddress {
        EmailAddress::parse("ann@example.com").unwrap()
    }

    fn registered() -> E {
        E::Registered {
            email: email(),
            password_hash: HASH.into(),
        }
    }

    fn register() -> C {
        C::RegisterUser {
            email: email(),
            password_hash: HASH.into(),
        }
    }

    fn reset_requested(token: &str) -> E {
        E::PasswordResetRequested {
            token_hash: token.into(),
            expires_at: now() + TimeDelta::minutes(30),
        }
    }

    fn complete(token: &str, at: DateTime<Utc>) -> C {
        C::CompletePasswordReset {
            token_hash: token.into(),
            password_hash: "new-hash".into(),
            now: at,
        }
    }

    #[test]
    fn registering_records_email_and_hash() {
        user()
            .given_no_previous_events()
            .when(register())
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn a_user_cannot_register_twice() {
        user()
            .given(vec![registered()])
            .when(register())
            .then_expect_error(UserError::AlreadyRegistered);
    }

    #[test]
    fn changing_the_password_of_an_unknown_user_is_not_found() {
        user()
            .given_no_previous_events()
            .when(C::ChangePassword {
                password_hash: HASH.into(),
            })
            .then_expect_error(UserError::NotFound);
    }

    #[test]
    fn a_password_change_invalidates_an_outstanding_reset_token() {
        user()
            .given(vec![registered(), reset_requested("t1")])
            .and(vec![E::PasswordChanged {
                password_hash: "other".into(),
            }])
            .when(complete("t1", now()))
            .then_expect_error(UserError::ResetTokenInvalid);
    }

    #[test]
    fn a_reset_with_the_latest_token_before_expiry_sets_the_new_hash() {
        user()
            .given(vec![registered(), reset_requested("t1")])
            .when(complete("t1", now()))
            .then_expect_events(vec![E::PasswordResetCompleted {
                password_hash: "new-hash".into(),
            }]);
    }

    #[test]
    fn a_reset_token_works_only_once() {
        user()
            .given(vec![registered(), reset_requested("t1")])
            .and(vec![E::PasswordResetCompleted {
                password_hash: "new-hash".into(),
            }])
            .when(complete("t1", now()))
            .then_expect_error(UserError::ResetTokenInvalid);
    }

    #[test]
    fn an_earlier_reset_token_still_works_after_a_new_one_is_requested() {
        user()
            .given(vec![registered(), reset_requested("t1"), reset_requested("t2")])
            .when(complete("t1", now()))
            .then_expect_events(vec![E::PasswordResetCompleted {
                password_hash: "new-hash".into(),
            }]);
    }

    #[test]
    fn completing_a_reset_ends_every_outstanding_token() {
        user()
            .given(vec![registered(), reset_requested("t1"), reset_requested("t2")])
            .and(vec![E::PasswordResetCompleted {
                password_hash: "new-hash".into(),
            }])
            .when(complete("t2", now()))
            .then_expect_error(UserError::ResetTokenInvalid);
    }

    fn request(token: &str, at: DateTime<Utc>) -> C {
        C::RequestPasswordReset {
            token_hash: token.into(),
            expires_at: at + TimeDelta::minutes(30),
            now: at,
        }
    }

    #[test]
    fn a_request_beyond_the_outstanding_limit_is_refused() {
        user()
            .given(vec![
                registered(),
                reset_requested("t1"),
                reset_requested("t2"),
                reset_requested("t3"),
            ])
            .when(request("t4", now()))
            .then_expect_error(UserError::TooManyResetRequests);
    }

    #[test]
    fn expired_tokens_do_not_count_towards_the_outstanding_limit() {
        user()
            .given(vec![
                registered(),
                reset_requested("t1"),
                reset_requested("t2"),
                reset_requested("t3"),
            ])
            .when(request("t4", now() + TimeDelta::minutes(30)))
            .then_expect_events(vec![E::PasswordResetRequested {
                token_hash: "t4".into(),
                expires_at: now() + TimeDelta::minutes(60),
            }]);
    }

    #[test]
    fn a_reset_token_at_its_expiry_time_is_expired() {
        user()
            .given(vec![registered(), reset_requested("t1")])
            .when(complete("t1", now() + TimeDelta::minutes(30)))
            .then_expect_error(UserError::ResetTokenExpired);
    }

    #[test]
    fn a_reset_without_any_request_is_invalid() {
        user()
            .given(vec![registered()])
            .when(complete("t1", now()))
            .then_expect_error(UserError::ResetTokenInvalid);
    }

    #[test]
    fn a_platform_admin_cannot_be_promoted_again() {
        user()
            .given(vec![registered(), E::PromotedToPlatformAdmin])
            .when(C::PromoteToPlatformAdmin)
            .then_expect_error(UserError::AlreadyPlatformAdmin);
    }

    #[test]
    fn debug_output_never_shows_a_hash() {
        let mut state = User::default();
        state.apply(registered());
        state.apply(reset_requested("secret-token-hash"));
        let printed = format!(
            "{state:?} {:?} {:?} {:?}",
            registered(),
            reset_requested("secret-token-hash"),
            complete("secret-token-hash", now())
        );
        assert!(!printed.contains(HASH) && !printed.contains("secret-token-hash"));
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        let events = [
            registered(),
            E::PasswordChanged {
                password_hash: HASH.into(),
            },
            reset_requested("t"),
            E::PasswordResetCompleted {
                password_hash: HASH.into(),
            },
            E::PromotedToPlatformAdmin,
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
    }

    #[test]
    fn a_platform_admin_is_registered_and_promoted_in_one_decision() {
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(C::RegisterPlatformAdmin {
                email: email(),
                password_hash: HASH.into(),
            })
            .then_expect_events(vec![registered(), E::PromotedToPlatformAdmin]);
    }
}
