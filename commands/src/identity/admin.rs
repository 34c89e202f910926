//! Platform administration: administrators, suspension, impersonation.

use chrono::{DateTime, TimeDelta, Utc};
use domain::email_claim::EmailClaimCommand;
use domain::impersonation::ImpersonationCommand;
use domain::organization::{OrganizationCommand, OrganizationError};
use domain::user::UserCommand;
use domain::{Actor, EmailAddress, check_new_password};
use uuid::Uuid;

use super::sessions::{email_claim_id, user_context};
use super::{Caller, Denial, IdentityError, IdentityService, lookups, tokens};
use eventstore::{CommandContext, CommandError};

/// What `agentry admin create` has done when the read model has not caught up with it.
const ADMIN_RECORDED: &str = "the platform administrator was created but cannot log in yet";

impl IdentityService {
    /// Creates a platform administrator, or promotes the existing user with that email (the
    /// `agentry admin create` command). Returns the user id once they can log in, or
    /// [`IdentityError::NotYetEffective`] when the read model login uses has not caught up.
    pub async fn create_platform_admin(&self, email: &str, password: &str) -> Result<Uuid, IdentityError> {
        let email = EmailAddress::parse(email)?;
        check_new_password(password, &email)?;
        let claim_id = email_claim_id(&email);
        let candidate = Uuid::now_v7();
        let context = CommandContext::system(None);
        let claim = EmailClaimCommand::ClaimEmail { user_id: candidate };
        let user_id = match self.emails.create(&claim_id, claim, &context).await {
            Ok(_) => candidate,
            Err(CommandError::Rejected(_)) => self
                .emails
                .load(&claim_id)
                .await?
                .claimed_by()
                .ok_or(IdentityError::Internal("email claim without a user".to_owned()))?,
            Err(other) => return Err(other.into()),
        };
        // A new claim, or one whose user an interrupted registration never created: create
        // the user, registered and promoted in one append (never visible as a plain user).
        if !self.users.load(&user_id.to_string()).await?.exists() {
            let password_hash = self.hashing.hash(password.to_owned()).await?;
            let register = UserCommand::RegisterPlatformAdmin {
                email,
                password_hash: password_hash.into(),
            };
            let registered = self
                .users
                .create(&user_id.to_string(), register, &context)
                .await?;
            self.wait_for_views(registered.appended.last(), ADMIN_RECORDED)
                .await?;
            return Ok(user_id);
        }
        match self
            .users
            .execute(
                &user_id.to_string(),
                UserCommand::PromoteToPlatformAdmin,
                &context,
            )
            .await
        {
            Ok(promoted) => {
                self.wait_for_views(promoted.appended.last(), ADMIN_RECORDED)
                    .await?;
                Ok(user_id)
            }
            Err(CommandError::Rejected(domain::user::UserError::AlreadyPlatformAdmin)) => Ok(user_id),
            Err(other) => Err(other.into()),
        }
    }

    /// Suspends an organization: its tokens and keys get 403 from the next request on.
    pub async fn suspend_organization(
        &self,
        caller: &Caller,
        org_id: Uuid,
        reason: &str,
        request_id: Option<String>,
    ) -> Result<(), IdentityError> {
        require_platform_admin(caller)?;
        let suspend = OrganizationCommand::SuspendOrganization {
            reason: reason.to_owned(),
        };
        let done = self
            .organizations
            .execute(
                &org_id.to_string(),
                suspend,
                &admin_context(caller, org_id, request_id),
            )
            .await?;
        // Kept: a suspension must not report success while the organization's credentials work.
        self.wait_for_views(
            done.appended.last(),
            "the organization was suspended but its credentials may still work for a short while",
        )
        .await
    }

    /// Lifts a suspension.
    pub async fn reactivate_organization(
        &self,
        caller: &Caller,
        org_id: Uuid,
        request_id: Option<String>,
    ) -> Result<(), IdentityError> {
        require_platform_admin(caller)?;
        let reactivate = OrganizationCommand::ReactivateOrganization;
        let done = self
            .organizations
            .execute(
                &org_id.to_string(),
                reactivate,
                &admin_context(caller, org_id, request_id),
            )
            .await?;
        // Kept: the organization's next request reads the suspension flag from the view.
        self.wait_for_views(done.appended.last(), "the organization was reactivated")
            .await
    }

    /// Lets a platform administrator act as `user_id` in `org_id` for `ttl` with a stated
    /// reason. The token says so in `/v1/me`, and every event written with it records both.
    pub async fn impersonate(
        &self,
        caller: &Caller,
        user_id: Uuid,
        org_id: Uuid,
        reason: &str,
        ttl: TimeDelta,
        request_id: Option<String>,
    ) -> Result<(String, DateTime<Utc>), IdentityError> {
        let admin_id = require_platform_admin(caller)?;
        if lookups::role_in(&self.pool, org_id, user_id).await?.is_none() {
            return Err(OrganizationError::NotAMember.into());
        }
        let now = Utc::now();
        let expires_at = now + ttl;
        let start = ImpersonationCommand::StartImpersonation {
            admin_user_id: admin_id,
            user_id,
            org_id,
            reason: reason.to_owned(),
            expires_at,
            now,
        };
        self.impersonations
            .create(
                &Uuid::now_v7().to_string(),
                start,
                &admin_context(caller, org_id, request_id),
            )
            .await?;
        let token = self.tokens.issue(&tokens::claims(
            user_id,
            Some(org_id),
            Some(admin_id),
            now,
            expires_at,
        ))?;
        Ok((token, expires_at))
    }
}

fn require_platform_admin(caller: &Caller) -> Result<Uuid, IdentityError> {
    match caller.user_id {
        Some(user_id) if caller.is_platform_admin => Ok(user_id),
        _ => Err(Denial::PlatformAdminRequired.into()),
    }
}

/// Platform actions are recorded in the affected organization's history.
fn admin_context(caller: &Caller, org_id: Uuid, request_id: Option<String>) -> CommandContext {
    let mut context = user_context(caller.user_id.unwrap_or_default(), request_id);
    context.actor = caller.user_id.map_or(Actor::System, |id| Actor::User { id });
    context.org_id = Some(org_id);
    context
}
