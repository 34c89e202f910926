//! Commands of the organization aggregate.

use uuid::Uuid;

use super::Quotas;
use crate::role::Role;

/// What a caller asks of an organization.
///
/// `by` is the acting user. The aggregate looks up their role in its own member list, never in
/// a read model (which can lag behind a demotion), and decides whether that role may do it.
#[derive(Clone, Debug, PartialEq)]
pub enum OrganizationCommand {
    /// Create the organization with its first owner (at registration).
    CreateOrganization {
        /// Display name, trimmed, 1 to 100 characters.
        name: String,
        /// The registering user, who becomes owner.
        owner_user_id: Uuid,
    },
    /// Give the organization a new name.
    RenameOrganization {
        /// New display name, trimmed, 1 to 100 characters.
        name: String,
    },
    /// A user joins by accepting an invitation. There is no other way in besides creating
    /// the organization: nobody becomes a member without accepting.
    JoinByInvitation {
        /// The accepting user (logged in as the invited address).
        user_id: Uuid,
        /// The role the invitation grants.
        role: Role,
        /// The member who invited: they must still be a member whose role may grant `role`.
        invited_by: Uuid,
        /// The accepted invitation.
        invitation_id: Uuid,
    },
    /// Change a member's role.
    ChangeMemberRole {
        /// The member.
        user_id: Uuid,
        /// Their new role.
        role: Role,
        /// The acting user.
        by: Uuid,
    },
    /// Remove a member.
    RemoveMember {
        /// The member.
        user_id: Uuid,
        /// The acting user.
        by: Uuid,
    },
    /// Suspend the organization (platform administrators only; checked by the application).
    SuspendOrganization {
        /// Why; trimmed, at most 500 characters, may be empty.
        reason: String,
    },
    /// Lift a suspension (platform administrators only; checked by the application).
    ReactivateOrganization,
    /// Replace the plan limits (platform administrators only; checked by the application).
    /// Every limit left `None` becomes unlimited.
    SetQuotas {
        /// The new limits, each within its range.
        quotas: Quotas,
    },
}
