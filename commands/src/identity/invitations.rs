//! Joining an organization by invitation: the only way in besides creating one.
//!
//! An owner or admin (with a verified email) invites an address; the invitation's token is
//! mailed there, whether or not the address has an account, and the answer is the same either
//! way. The user logged in as that address accepts with the token: only whoever reads that
//! mailbox can join. The token is single-use and expires; the inviter's authority is decided
//! again by the organization at acceptance, so a removed or demoted inviter's invitations stop
//! working.

use chrono::{DateTime, Utc};
use domain::invitation::{InvitationCommand, InvitationError};
use domain::organization::{OrganizationCommand, OrganizationError};
use domain::user::{UserCommand, UserError, VerificationProof};
use domain::{EmailAddress, Role};
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::sessions::user_context;
use super::{Caller, Denial, IdentityError, IdentityService, Mailer, lookups, secrets};

/// What an invitation answers to the inviter: nothing about the invitee's account.
#[derive(Clone, Debug)]
pub struct SentInvitation {
    /// The invitation's id (the first part of the mailed token).
    pub invitation_id: Uuid,
    /// When its token stops working.
    pub expires_at: DateTime<Utc>,
}

/// What accepting joined.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The organization.
    pub org_id: Uuid,
    /// The role it granted.
    pub role: Role,
}

impl IdentityService {
    /// Mails an invitation to join the caller's organization with `role` to `email`.
    ///
    /// The work is the same whether or not the address has an account; only an address that
    /// is already a member of this organization is refused (409 `already_member`), which the
    /// inviter can see in the member list anyway.
    pub async fn invite_member(
        &self,
        caller: &Caller,
        email: &str,
        role: Role,
        origin: Option<RequestOrigin>,
    ) -> Result<SentInvitation, IdentityError> {
        let org_id = caller.org()?;
        let by = inviting_user(caller)?;
        let email = EmailAddress::parse(email)?;
        if !Mailer::can_send_to(email.as_str()) {
            return Err(IdentityError::UndeliverableEmail);
        }
        if !self.users.load(&by.to_string()).await?.is_email_verified() {
            return Err(IdentityError::EmailNotVerified);
        }
        let organization = self.organizations.load(&org_id.to_string()).await?;
        organization
            .check_invitation(by, role)
            .map_err(IdentityError::from)?;
        let existing = lookups::user_by_email(&self.pool, email.as_str()).await?;
        if existing.is_some_and(|user| organization.role_of(user.user_id).is_some()) {
            return Err(OrganizationError::AlreadyMember.into());
        }
        let mailer = self.config.mailer.clone().ok_or(IdentityError::MailUnavailable(
            "invitations cannot be mailed: this server has no mail server configured (AGENTRY_SMTP_URL)",
        ))?;
        let invitation_id = Uuid::now_v7();
        let token = secrets::mailed_token(invitation_id);
        let expires_at = Utc::now() + self.config.invitation_ttl;
        let send = InvitationCommand::SendInvitation {
            org_id,
            email: email.clone(),
            role,
            token_hash: secrets::secret_hash(&token).into(),
            expires_at,
            invited_by: by,
        };
        self.invitations
            .create(&invitation_id.to_string(), send, &caller.context(origin))
            .await?;
        let body = self.invitation_mail(organization.name(), role, &token);
        mailer
            .send(email.as_str(), "You are invited to an Agentry organization", body)
            .await
            .map_err(|error| {
                tracing::error!(%error, invitation = %invitation_id, "invitation not mailed");
                IdentityError::MailUnavailable("the invitation could not be mailed; invite again later")
            })?;
        Ok(SentInvitation {
            invitation_id,
            expires_at,
        })
    }

    fn invitation_mail(&self, org_name: &str, role: Role, token: &str) -> String {
        let link = format!(
            "{}/accept-invitation?token={token}",
            self.config.public_url.trim_end_matches('/')
        );
        format!(
            "You are invited to join the organization \"{org_name}\" on Agentry as {role}.\n\nTo accept, log in (or register) with this email address and open:\n{link}\n\nThe link works once and expires in {} days. If you do not know this organization, ignore this message.\n",
            self.config.invitation_ttl.num_days()
        )
    }

    /// Accepts an invitation for the calling user, who must be logged in as the invited
    /// address. Accepting proves the mailbox, so it marks the email verified too.
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        token: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<Joined, IdentityError> {
        let user_id = accepting_user(caller)?;
        let invitation_id =
            secrets::mailed_token_id(token).ok_or(IdentityError::from(InvitationError::TokenInvalid))?;
        let token_hash: domain::TokenDigest = secrets::secret_hash(token).into();
        let invitation = self.invitations.load(&invitation_id.to_string()).await?;
        let user = self.users.load(&user_id.to_string()).await?;
        let user_email = user.email().cloned().ok_or(UserError::NotFound)?;
        let now = Utc::now();
        invitation
            .check_acceptance(&token_hash, &user_email, now)
            .map_err(IdentityError::from)?;
        let (Some(org_id), Some(role), Some(invited_by)) =
            (invitation.org_id(), invitation.role(), invitation.invited_by())
        else {
            return Err(IdentityError::from(InvitationError::TokenInvalid));
        };
        let mut context = user_context(user_id, origin);
        context.org_id = Some(org_id);
        // The organization first: a refusal there (inviter removed, suspended, already a
        // member) leaves the invitation unspent and nobody joined.
        let join = OrganizationCommand::JoinByInvitation {
            user_id,
            role,
            invited_by,
            invitation_id,
        };
        let joined = self
            .organizations
            .execute(&org_id.to_string(), join, &context)
            .await?;
        let accept = InvitationCommand::AcceptInvitation {
            token_hash,
            user_id,
            user_email,
            now,
        };
        if let Err(error) = self
            .invitations
            .execute(&invitation_id.to_string(), accept, &context)
            .await
        {
            // Only this user can accept (the address is theirs alone), and the organization
            // just let them in once; a failure here leaves an unspent invitation that can
            // only answer `already_member` from now on.
            tracing::warn!(%error, invitation = %invitation_id, "joined, but the invitation was not marked accepted");
        }
        let verified = UserCommand::MarkEmailVerified {
            proof: VerificationProof::Invitation,
        };
        self.users
            .execute(&user_id.to_string(), verified, &context)
            .await?;
        // Kept: the new member's next step (logging in to this organization) reads the view.
        self.wait_for_views(joined.appended.last(), "you joined the organization")
            .await?;
        Ok(Joined { org_id, role })
    }
}

/// The user inviting. The role from the caller (read from the identity view) refuses early and
/// cheaply; the organization aggregate then decides from its own member list.
fn inviting_user(caller: &Caller) -> Result<Uuid, IdentityError> {
    caller.require(Role::can_manage_members, "invite members")?;
    caller.user_id.ok_or(IdentityError::Denied(Denial::UserRequired {
        action: "invite members",
    }))
}

/// The user accepting: a user's own token (an administrator impersonating them does not read
/// their mailbox, and an API key has none).
fn accepting_user(caller: &Caller) -> Result<Uuid, IdentityError> {
    if caller.impersonator_id.is_some() {
        return Err(Denial::NotWhileImpersonating {
            action: "accept invitations",
        }
        .into());
    }
    caller.user_id.ok_or(IdentityError::Denied(Denial::UserRequired {
        action: "accept an invitation",
    }))
}
