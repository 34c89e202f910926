//! Email verification: a single-use, expiring link mailed at registration (and re-sent on
//! request, a few times per hour at most).
//!
//! What an unverified account may do: log in, and use the organization it created, like any
//! other; it may not invite members ([`IdentityError::EmailNotVerified`]), so our mail is no
//! relay for throwaway accounts. Accepting an invitation or completing a password reset proves
//! the mailbox as well, and `agentry admin create` users count as verified.

use chrono::Utc;
use domain::user::{UserCommand, UserError};
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::sessions::user_context;
use super::{Caller, Denial, IdentityError, IdentityService, secrets};

impl IdentityService {
    /// Records a new verification token for `user_id` and mails its link in the background
    /// (the caller's answer never waits for the mail server).
    pub(super) async fn send_email_verification(
        &self,
        user_id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let user = self.users.load(&user_id.to_string()).await?;
        let email = user.email().ok_or(UserError::NotFound)?.as_str().to_owned();
        let token = secrets::mailed_token(user_id);
        let now = Utc::now();
        let request = UserCommand::RequestEmailVerification {
            token_hash: secrets::secret_hash(&token).into(),
            expires_at: now + self.config.verification_ttl,
            now,
        };
        self.users
            .execute(&user_id.to_string(), request, &user_context(user_id, origin))
            .await?;
        let link = format!(
            "{}/verify-email?token={token}",
            self.config.public_url.trim_end_matches('/')
        );
        let body = format!(
            "Welcome to Agentry.\n\nTo confirm that this address is yours, open:\n{link}\n\nThe link works once and expires in {} days. Until then you can use your account, but not invite others. If you did not create an Agentry account, ignore this message.\n",
            self.config.verification_ttl.num_days()
        );
        let Some(mailer) = self.config.mailer.clone() else {
            tracing::warn!(user = %user_id, "email verification not mailed: AGENTRY_SMTP_URL is not set");
            return Ok(());
        };
        tokio::spawn(async move {
            if let Err(error) = mailer
                .send(&email, "Confirm your email address for Agentry", body)
                .await
            {
                tracing::error!(%error, user = %user_id, "email verification not sent");
            }
        });
        Ok(())
    }

    /// Re-sends the verification link to the calling user (409 when verified already, 429
    /// past the per-hour limit).
    pub async fn resend_email_verification(
        &self,
        caller: &Caller,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let user_id = caller.user_id.ok_or(IdentityError::Denied(Denial::UserRequired {
            action: "verify an email address",
        }))?;
        self.send_email_verification(user_id, origin).await
    }

    /// Marks the email of the token's user verified; the token then stops working.
    pub async fn verify_email(
        &self,
        token: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let user_id = secrets::mailed_token_id(token)
            .ok_or(IdentityError::from(UserError::VerificationTokenInvalid))?;
        let verify = UserCommand::VerifyEmail {
            token_hash: secrets::secret_hash(token).into(),
            now: Utc::now(),
        };
        match self
            .users
            .execute(&user_id.to_string(), verify, &user_context(user_id, origin))
            .await
        {
            Ok(_) => Ok(()),
            Err(eventstore::CommandError::Rejected(UserError::NotFound)) => {
                Err(IdentityError::from(UserError::VerificationTokenInvalid))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The user's email and whether it is verified, for `/v1/me`, from the user aggregate
    /// (so a verification of a moment ago shows at once).
    pub async fn user_profile(&self, user_id: Uuid) -> Result<Option<UserProfile>, IdentityError> {
        let user = self.users.load(&user_id.to_string()).await?;
        Ok(user.email().map(|email| UserProfile {
            email: email.as_str().to_owned(),
            email_verified: user.is_email_verified(),
        }))
    }
}

/// What `/v1/me` shows of a user.
#[derive(Clone, Debug)]
pub struct UserProfile {
    /// The normalized email.
    pub email: String,
    /// Whether they proved they read its mailbox.
    pub email_verified: bool,
}
