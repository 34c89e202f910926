//! Platform administration: administrators, suspension, plan limits, impersonation.

use chrono::{DateTime, TimeDelta, Utc};
use domain::impersonation::{ImpersonationCommand, ImpersonationError};
use domain::organization::{OrganizationCommand, OrganizationError, Quotas};
use domain::user::UserCommand;
use domain::{Actor, EmailAddress, check_new_password};
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::email_claims::Holder;
use super::sessions::user_context;
use super::{Caller, Denial, IdentityError, IdentityService, lookups, tokens};
use eventstore::store::AppendedEvent;
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
        let candidate = Uuid::now_v7();
        let context = CommandContext::system(None);
        let user_id = match self.claim_email_for(&email, candidate, &context).await? {
            Holder::Candidate(user_id) | Holder::Existing(user_id) => user_id,
        };
        // A new claim, or one whose user an interrupted registration never created: create
        // the user, registered and promoted in one append (never visible as a plain user).
        let holder = self.users.load(&user_id.to_string()).await?;
        if holder.exists() && holder.email() != Some(&email) {
            // The holder registered a lookalike of this address: never promote them by it.
            return Err(IdentityError::EmailTaken);
        }
        if !holder.exists() {
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
        origin: Option<RequestOrigin>,
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
                &admin_context(caller, org_id, origin),
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
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        require_platform_admin(caller)?;
        let reactivate = OrganizationCommand::ReactivateOrganization;
        let done = self
            .organizations
            .execute(
                &org_id.to_string(),
                reactivate,
                &admin_context(caller, org_id, origin),
            )
            .await?;
        // Kept: the organization's next request reads the suspension flag from the view.
        self.wait_for_views(done.appended.last(), "the organization was reactivated")
            .await
    }

    /// Replaces an organization's plan limits (each `None`: unlimited). Recorded on the
    /// organization with the administrator as actor; setting the limits in force records
    /// nothing. Answers the limits in force, once the view the checks read holds them.
    pub async fn set_organization_quotas(
        &self,
        caller: &Caller,
        org_id: Uuid,
        quotas: Quotas,
        origin: Option<RequestOrigin>,
    ) -> Result<Quotas, IdentityError> {
        require_platform_admin(caller)?;
        let done = self
            .organizations
            .execute(
                &org_id.to_string(),
                OrganizationCommand::SetQuotas { quotas },
                &admin_context(caller, org_id, origin),
            )
            .await?;
        // Kept: the next run start reads the limits from the view.
        self.wait_for_views(
            done.appended.last(),
            "the quotas were set but may not be enforced for a short while",
        )
        .await?;
        Ok(done.state.quotas())
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
        origin: Option<RequestOrigin>,
    ) -> Result<StartedImpersonation, IdentityError> {
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
        let impersonation_id = Uuid::now_v7();
        self.impersonations
            .create(
                &impersonation_id.to_string(),
                start,
                &admin_context(caller, org_id, origin),
            )
            .await?;
        let claims = tokens::claims(user_id, Some(org_id), Some(admin_id), now, expires_at)
            .in_impersonation(impersonation_id);
        Ok(StartedImpersonation {
            impersonation_id,
            access_token: self.tokens.issue(&claims)?,
            expires_at,
        })
    }

    /// Ends an impersonation before its time limit (any platform administrator may: stopping
    /// one is never the risky direction). Its token is refused from the answer on; ending one
    /// already ended is a no-op.
    pub async fn end_impersonation(
        &self,
        caller: &Caller,
        impersonation_id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        require_platform_admin(caller)?;
        let id = impersonation_id.to_string();
        let Some(org_id) = self.impersonations.load(&id).await?.org_id() else {
            return Err(ImpersonationError::NotFound.into());
        };
        let context = admin_context(caller, org_id, origin);
        let ended = match self
            .impersonations
            .execute(&id, ImpersonationCommand::EndImpersonation, &context)
            .await
        {
            Ok(ended) => ended,
            Err(CommandError::Rejected(ImpersonationError::AlreadyEnded)) => return Ok(()),
            Err(other) => return Err(other.into()),
        };
        // Kept: the impersonation token must be refused once this answers.
        self.wait_for_views(
            ended.appended.last(),
            "the impersonation was ended but its token may still be accepted for a short while",
        )
        .await
    }
}

impl IdentityService {
    /// Ends every live impersonation of the user (after a password reset). Read from the view,
    /// which the caller has made hold every impersonation started before the reset. Returns
    /// the last event written, for the caller to wait on.
    pub(super) async fn end_impersonations_of(
        &self,
        user_id: Uuid,
        context: &CommandContext,
    ) -> Result<Option<AppendedEvent>, IdentityError> {
        let mut last = None;
        for impersonation in lookups::live_impersonations_of(&self.pool, user_id).await? {
            let end = ImpersonationCommand::EndImpersonation;
            match self
                .impersonations
                .execute(&impersonation.to_string(), end, context)
                .await
            {
                Ok(ended) => last = ended.appended.last().copied().or(last),
                Err(CommandError::Rejected(ImpersonationError::AlreadyEnded)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(last)
    }
}

/// An impersonation just started.
#[derive(Clone, Debug)]
pub struct StartedImpersonation {
    /// Its id, to end it early.
    pub impersonation_id: Uuid,
    /// The impersonation token.
    pub access_token: String,
    /// When the token stops working at the latest.
    pub expires_at: DateTime<Utc>,
}

fn require_platform_admin(caller: &Caller) -> Result<Uuid, IdentityError> {
    match caller.user_id {
        Some(user_id) if caller.is_platform_admin => Ok(user_id),
        _ => Err(Denial::PlatformAdminRequired.into()),
    }
}

/// Platform actions are recorded in the affected organization's history.
fn admin_context(caller: &Caller, org_id: Uuid, origin: Option<RequestOrigin>) -> CommandContext {
    let mut context = user_context(caller.user_id.unwrap_or_default(), origin);
    context.actor = caller.user_id.map_or(Actor::System, |id| Actor::User { id });
    context.org_id = Some(org_id);
    context
}
