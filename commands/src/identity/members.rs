//! Organization membership: change role, remove, list (joining is in `invitations`).

use domain::Role;
use domain::organization::OrganizationCommand;
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::{Caller, Denial, IdentityError, IdentityService, MemberRow, lookups};

impl IdentityService {
    /// Changes a member's role.
    pub async fn change_member_role(
        &self,
        caller: &Caller,
        user_id: Uuid,
        role: Role,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let org_id = caller.org()?;
        let by = acting_user(caller)?;
        let change = OrganizationCommand::ChangeMemberRole { user_id, role, by };
        let changed = self
            .organizations
            .execute(&org_id.to_string(), change, &caller.context(origin))
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
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let org_id = caller.org()?;
        let by = acting_user(caller)?;
        let remove = OrganizationCommand::RemoveMember { user_id, by };
        let removed = self
            .organizations
            .execute(&org_id.to_string(), remove, &caller.context(origin))
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
