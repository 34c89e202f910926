//! Password reset by a single-use, expiring link sent by email.

use chrono::Utc;
use domain::session::{RevocationReason, SessionCommand, SessionError};
use domain::user::{UserCommand, UserError};
use domain::{EmailAddress, check_new_password};
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::login_throttle::account_key;
use super::sessions::user_context;
use super::{CredentialError, IdentityError, IdentityService, lookups, secrets};
use eventstore::CommandContext;
use eventstore::store::AppendedEvent;

/// What a completed reset has done when the read model has not caught up with it.
const PASSWORD_CHANGED: &str =
    "the password was changed, but the old password and sessions may still work for a short while";

impl IdentityService {
    /// Sends a reset link when the email belongs to an account; does nothing visible otherwise,
    /// so the answer never tells whether an account exists.
    pub async fn request_password_reset(
        &self,
        email: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let Ok(email) = EmailAddress::parse(email) else {
            return Ok(());
        };
        let Some(user) = lookups::user_by_email(&self.pool, email.as_str()).await? else {
            return Ok(());
        };
        let token = format!("{}.{}", user.user_id.simple(), secrets::random_secret(32));
        let now = Utc::now();
        let request = UserCommand::RequestPasswordReset {
            token_hash: secrets::secret_hash(&token).into(),
            expires_at: now + self.config.reset_ttl,
            now,
        };
        let requested = self
            .users
            .execute(
                &user.user_id.to_string(),
                request,
                &user_context(user.user_id, origin),
            )
            .await;
        match requested {
            Ok(_) => {}
            // The mailbox already holds as many working links as allowed: the request is
            // answered the same and sends nothing (issue 11, finding 4).
            Err(eventstore::CommandError::Rejected(UserError::TooManyResetRequests)) => {
                tracing::info!(user = %user.user_id, "password reset not mailed: too many links outstanding");
                return Ok(());
            }
            Err(other) => return Err(other.into()),
        }
        let link = format!(
            "{}/reset-password?token={token}",
            self.config.public_url.trim_end_matches('/')
        );
        let body = format!(
            "Someone asked to reset the password of your Agentry account.\n\nTo choose a new password, open:\n{link}\n\nThe link works once and expires in {} minutes. If you did not ask for this, ignore this message.\n",
            self.config.reset_ttl.num_minutes()
        );
        match &self.config.mailer {
            Some(mailer) => {
                if let Err(error) = mailer
                    .send(&user.email, "Reset your Agentry password", body)
                    .await
                {
                    tracing::error!(%error, user = %user.user_id, "password reset email not sent");
                }
            }
            None => {
                tracing::warn!(user = %user.user_id, "password reset requested but AGENTRY_SMTP_URL is not set")
            }
        }
        Ok(())
    }

    /// Sets a new password with a reset token; the token then stops working.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let invalid = CredentialError::InvalidResetToken;
        let user_id = token
            .split_once('.')
            .and_then(|(user, _)| Uuid::try_parse(user).ok())
            .ok_or(invalid)?;
        let user = self.users.load(&user_id.to_string()).await?;
        let email: EmailAddress = user.email().cloned().ok_or(CredentialError::InvalidResetToken)?;
        let token_hash = secrets::secret_hash(token).into();
        let now = Utc::now();
        // The token first: a wrong link must not learn whether the password would pass, nor
        // cost a hash. The aggregate checks it again when the reset is recorded.
        user.check_reset_token(&token_hash, now)
            .map_err(IdentityError::from)?;
        check_new_password(new_password, &email)?;
        let password_hash = self.hashing.hash(new_password.to_owned()).await?;
        let complete = UserCommand::CompletePasswordReset {
            token_hash,
            password_hash: password_hash.into(),
            now,
        };
        let context = user_context(user_id, origin);
        let done = self
            .users
            .execute(&user_id.to_string(), complete, &context)
            .await?;
        // Whoever reset it reads the mailbox: the account's failed logins and locks are forgotten.
        self.login_throttle
            .clear_account(&account_key(email.as_str()))
            .await?;
        // Kept, and needed before the next step too: the sessions to end are read from the view,
        // which must hold every session started before the reset.
        self.wait_for_views(done.appended.last(), PASSWORD_CHANGED)
            .await?;
        let ended = self.end_sessions_of(user_id, &context).await?;
        // An administrator acting as the user holds a credential too: it ends with the old
        // password (written after the sessions' ends, so the later wait covers both).
        let stopped = self.end_impersonations_of(user_id, &context).await?;
        // Kept: old sessions and impersonations must stop working when this answers.
        self.wait_for_views(stopped.as_ref().or(ended.as_ref()), PASSWORD_CHANGED)
            .await
    }
}

impl IdentityService {
    /// Ends every live session of the user (after a password reset), so tokens issued with the
    /// old password stop working now rather than when they expire. Sessions started while this
    /// runs are still caught at their next refresh by the credential version.
    /// Returns the last event written, for the caller to wait on.
    async fn end_sessions_of(
        &self,
        user_id: Uuid,
        context: &CommandContext,
    ) -> Result<Option<AppendedEvent>, IdentityError> {
        let mut last = None;
        for session in lookups::live_sessions_of(&self.pool, user_id).await? {
            let end = SessionCommand::EndSession {
                reason: RevocationReason::PasswordChanged,
            };
            match self.sessions.execute(&session.to_string(), end, context).await {
                Ok(ended) => last = ended.appended.last().copied().or(last),
                Err(eventstore::CommandError::Rejected(SessionError::Revoked)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(last)
    }
}
