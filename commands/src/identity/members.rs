//! Organization membership: invite, change role, remove, list.

use domain::organization::OrganizationCommand;
use domain::user::UserError;
use domain::{EmailAddress, Role};
use uuid::Uuid;

use super::{Caller, Denial, IdentityError, IdentityService, MemberRow, lookups};

impl IdentityService {
    /// Adds the registered user with `email` to the caller's organization with `role`.
    pub async fn add_member(
        &self,
        caller: &Caller,
        email: &str,
        role: Role,
        request_id: Option<String>,
    ) -> Result<MemberRow, IdentityError> {
        let org_id = caller.org()?;
        let by = acting_user(caller)?;
        let email = EmailAddress::parse(email)?;
        let user = lookups::user_by_email(&self.pool, email.as_str())
            .await?
            .ok_or(UserError::NotFound)?;
        let add = OrganizationCommand::AddMember {
            user_id: user.user_id,
            role,
            by,
        };
        let added = self
            .organizations
            .execute(&org_id.to_string(), add, &caller.context(request_id))
            .await?;
        // Kept: the new member's next step (logging in to this organization) reads the view.
        self.wait_for_views(added.appended.last(), "the member was added")
            .await?;
        Ok(MemberRow {
            user_id: user.user_id,
            email: user.email,
            role,
        })
    }

    /// Changes a member's role.
    pub async fn change_member_role(
        &self,
        caller: &Caller,
        user_id: Uuid,
        role: Role,
        request_id: Option<String>,
    ) -> Result<(), IdentityError> {
        let org_id = caller.org()?;
        let by = acting_user(caller)?;
        let change = OrganizationCommand::ChangeMemberRole { user_id, role, by };
        let changed = self
            .organizations
            .execute(&org_id.to_string(), change, &caller.context(request_id))
            .await?;
        // Kept: every request's role comes from the view; a demotion must be in force.
        self.wait_for_views(changed.appended.last(), "the member's role was changed")
            .await
    }

    /// Removes a member; the last owner stays.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        user_id: Uuid,
        request_id: Option<String>,
    ) -> Result<(), IdentityError> {
        let org_id = caller.org()?;
        let by = acting_user(caller)?;
        let remove = OrganizationCommand::RemoveMember { user_id, by };
        let removed = self
            .organizations
            .execute(&org_id.to_string(), remove, &caller.context(request_id))
            .await?;
        // Kept: a removal must not report success while the member still gets in.
        self.wait_for_views(
            removed.appended.last(),
            "the member was removed but may keep access for a short while",
        )
        .await
    }

    /// The members of the caller's organization (any role may read).
    pub async fn list_members(&self, caller: &Caller) -> Result<Vec<MemberRow>, IdentityError> {
        Ok(lookups::members_of(&self.pool, caller.org()?).await?)
    }
}

/// The user managing members. The role from the caller (read from the identity view) refuses
/// early and cheaply; the organization aggregate then decides from its own member list, so a
/// demotion counts at once even while the view lags.
fn acting_user(caller: &Caller) -> Result<Uuid, IdentityError> {
    caller.require(Role::can_manage_members, "manage members")?;
    caller.user_id.ok_or(IdentityError::Denied(Denial::UserRequired {
        action: "manage members",
    }))
}

impl IdentityService {
    /// A user's email, for `/v1/me`.
    pub async fn user_email(&self, user_id: Uuid) -> Result<Option<String>, IdentityError> {
        Ok(lookups::user_by_id(&self.pool, user_id)
            .await?
            .map(|user| user.email))
    }
}
