//! Commands of the organization aggregate.

use uuid::Uuid;

use crate::role::Role;

/// What a caller asks of an organization.
///
/// `by_role` is the caller's own role in this organization, looked up by the application
/// before the command is sent: the aggregate decides whether that role may do it.
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
    /// Add a user as a member.
    AddMember {
        /// The user to add.
        user_id: Uuid,
        /// The role to give them.
        role: Role,
        /// The caller's role.
        by_role: Role,
    },
    /// Change a member's role.
    ChangeMemberRole {
        /// The member.
        user_id: Uuid,
        /// Their new role.
        role: Role,
        /// The caller's role.
        by_role: Role,
    },
    /// Remove a member.
    RemoveMember {
        /// The member.
        user_id: Uuid,
        /// The caller's role.
        by_role: Role,
    },
    /// Suspend the organization (platform administrators only; checked by the application).
    SuspendOrganization {
        /// Why; trimmed, at most 500 characters, may be empty.
        reason: String,
    },
    /// Lift a suspension (platform administrators only; checked by the application).
    ReactivateOrganization,
}
