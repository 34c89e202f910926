//! The user aggregate: state, decisions and how events change the state.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{UserCommand, UserError, UserEvent, VerificationProof};
use crate::email::EmailAddress;
use crate::secret::{PasswordDigest, TokenDigest};
use crate::sink::write_all;

type Decision = Result<Vec<UserEvent>, UserError>;

/// Verification mails a user may cause per rolling hour (registration's included), so our
/// mail cannot be used to flood a mailbox.
pub const MAX_VERIFICATION_MAILS_PER_HOUR: usize = 3;

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
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    pending_verifications: Vec<PendingVerification>,
}

/// A verification link still outstanding. Only the latest
/// [`MAX_VERIFICATION_MAILS_PER_HOUR`] are kept, which is also what the per-hour limit counts;
/// any of them verifies, so a re-sent mail does not spoil the first one.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
struct PendingVerification {
    token_hash: TokenDigest,
    expires_at: DateTime<Utc>,
    requested_at: DateTime<Utc>,
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

    /// Whether the user proved they read their email's mailbox (a verification link, an
    /// accepted invitation, a password reset, or `agentry admin create`).
    pub fn is_email_verified(&self) -> bool {
        self.email_verified
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
        let mut events = vec![UserEvent::PasswordResetCompleted { password_hash }];
        // The token came by mail: completing the reset proves the mailbox.
        events.extend(self.verified_by(VerificationProof::PasswordReset));
        Ok(events)
    }

    fn promote(&self) -> Decision {
        self.require_exists()?;
        if self.platform_admin {
            return Err(UserError::AlreadyPlatformAdmin);
        }
        let mut events = vec![UserEvent::PromotedToPlatformAdmin];
        events.extend(self.verified_by(VerificationProof::PlatformAdmin));
        Ok(events)
    }

    /// The event that marks the email verified, unless it is already.
    fn verified_by(&self, proof: VerificationProof) -> Option<UserEvent> {
        (!self.email_verified).then_some(UserEvent::EmailVerified { proof })
    }

    fn request_verification(
        &self,
        token_hash: TokenDigest,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Decision {
        self.require_exists()?;
        if self.email_verified {
            return Err(UserError::EmailAlreadyVerified);
        }
        let hour_ago = now - TimeDelta::hours(1);
        let recent: Vec<_> = self
            .pending_verifications
            .iter()
            .map(|pending| pending.requested_at)
            .filter(|at| *at > hour_ago)
            .collect();
        if recent.len() >= MAX_VERIFICATION_MAILS_PER_HOUR
            && let Some(oldest) = recent.iter().min()
        {
            let retry_after_seconds = (*oldest - hour_ago).num_seconds().max(1);
            return Err(UserError::VerificationMailLimit { retry_after_seconds });
        }
        Ok(vec![UserEvent::EmailVerificationRequested {
            token_hash,
            expires_at,
            requested_at: now,
        }])
    }

    fn verify_email(&self, token_hash: &TokenDigest, now: DateTime<Utc>) -> Decision {
        self.require_exists()?;
        let pending = self
            .pending_verifications
            .iter()
            .find(|pending| pending.token_hash == *token_hash)
            .ok_or(UserError::VerificationTokenInvalid)?;
        if now >= pending.expires_at {
            return Err(UserError::VerificationTokenExpired);
        }
        Ok(vec![UserEvent::EmailVerified {
            proof: VerificationProof::Link,
        }])
    }

    fn mark_verified(&self, proof: VerificationProof) -> Decision {
        self.require_exists()?;
        Ok(self.verified_by(proof).into_iter().collect())
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
                events.push(UserEvent::EmailVerified {
                    proof: VerificationProof::PlatformAdmin,
                });
                events
            }
            C::RequestEmailVerification {
                token_hash,
                expires_at,
                now,
            } => self.request_verification(token_hash, expires_at, now)?,
            C::VerifyEmail { token_hash, now } => self.verify_email(&token_hash, now)?,
            C::MarkEmailVerified { proof } => self.mark_verified(proof)?,
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
            UserEvent::EmailVerificationRequested {
                token_hash,
                expires_at,
                requested_at,
            } => {
                self.pending_verifications.push(PendingVerification {
                    token_hash,
                    expires_at,
                    requested_at,
                });
                let excess = self
                    .pending_verifications
                    .len()
                    .saturating_sub(MAX_VERIFICATION_MAILS_PER_HOUR);
                self.pending_verifications.drain(..excess);
            }
            UserEvent::EmailVerified { .. } => {
                self.email_verified = true;
                self.pending_verifications.clear();
            }
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
            .then_expect_events(vec![
                E::PasswordResetCompleted {
                    password_hash: "new-hash".into(),
                },
                E::EmailVerified {
                    proof: VerificationProof::PasswordReset,
                },
            ]);
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
            .then_expect_events(vec![
                E::PasswordResetCompleted {
                    password_hash: "new-hash".into(),
                },
                E::EmailVerified {
                    proof: VerificationProof::PasswordReset,
                },
            ]);
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
            verification_requested("v", now()),
            verified(VerificationProof::Link),
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
            .then_expect_events(vec![
                registered(),
                E::PromotedToPlatformAdmin,
                E::EmailVerified {
                    proof: VerificationProof::PlatformAdmin,
                },
            ]);
    }

    fn verification_requested(token: &str, at: DateTime<Utc>) -> E {
        E::EmailVerificationRequested {
            token_hash: token.into(),
            expires_at: at + TimeDelta::days(7),
            requested_at: at,
        }
    }

    fn request_verification(token: &str, at: DateTime<Utc>) -> C {
        C::RequestEmailVerification {
            token_hash: token.into(),
            expires_at: at + TimeDelta::days(7),
            now: at,
        }
    }

    fn verify(token: &str, at: DateTime<Utc>) -> C {
        C::VerifyEmail {
            token_hash: token.into(),
            now: at,
        }
    }

    fn verified(proof: VerificationProof) -> E {
        E::EmailVerified { proof }
    }

    #[test]
    fn a_new_user_is_not_verified_and_the_mailed_link_verifies_them() {
        let mut state = User::default();
        state.apply(registered());
        assert!(!state.is_email_verified());
        user()
            .given(vec![registered(), verification_requested("v1", now())])
            .when(verify("v1", now()))
            .then_expect_events(vec![verified(VerificationProof::Link)]);
    }

    #[test]
    fn an_earlier_verification_link_still_works_after_a_resend() {
        user()
            .given(vec![
                registered(),
                verification_requested("v1", now()),
                verification_requested("v2", now()),
            ])
            .when(verify("v1", now()))
            .then_expect_events(vec![verified(VerificationProof::Link)]);
    }

    #[test]
    fn a_verification_link_works_once() {
        user()
            .given(vec![
                registered(),
                verification_requested("v1", now()),
                verified(VerificationProof::Link),
            ])
            .when(verify("v1", now()))
            .then_expect_error(UserError::VerificationTokenInvalid);
    }

    #[test]
    fn an_expired_verification_link_is_refused() {
        user()
            .given(vec![registered(), verification_requested("v1", now())])
            .when(verify("v1", now() + TimeDelta::days(7)))
            .then_expect_error(UserError::VerificationTokenExpired);
    }

    #[test]
    fn a_fourth_verification_mail_within_an_hour_is_refused() {
        user()
            .given(vec![
                registered(),
                verification_requested("v1", now()),
                verification_requested("v2", now() + TimeDelta::minutes(10)),
                verification_requested("v3", now() + TimeDelta::minutes(20)),
            ])
            .when(request_verification("v4", now() + TimeDelta::minutes(30)))
            .then_expect_error(UserError::VerificationMailLimit {
                retry_after_seconds: 30 * 60,
            });
    }

    #[test]
    fn a_verification_mail_is_allowed_again_an_hour_after_the_oldest() {
        let later = now() + TimeDelta::minutes(61);
        user()
            .given(vec![
                registered(),
                verification_requested("v1", now()),
                verification_requested("v2", now() + TimeDelta::minutes(10)),
                verification_requested("v3", now() + TimeDelta::minutes(20)),
            ])
            .when(request_verification("v4", later))
            .then_expect_events(vec![verification_requested("v4", later)]);
    }

    #[test]
    fn a_verified_user_gets_no_verification_mail() {
        user()
            .given(vec![registered(), verified(VerificationProof::Invitation)])
            .when(request_verification("v1", now()))
            .then_expect_error(UserError::EmailAlreadyVerified);
    }

    #[test]
    fn an_accepted_invitation_verifies_once() {
        user()
            .given(vec![registered()])
            .when(C::MarkEmailVerified {
                proof: VerificationProof::Invitation,
            })
            .then_expect_events(vec![verified(VerificationProof::Invitation)]);
        user()
            .given(vec![registered(), verified(VerificationProof::Link)])
            .when(C::MarkEmailVerified {
                proof: VerificationProof::Invitation,
            })
            .then_expect_events(vec![]);
    }
}
