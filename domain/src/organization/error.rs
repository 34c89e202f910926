//! Why an organization command was refused.

use super::QuotaName;
use crate::role::Role;

/// A refused organization command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrganizationError {
    /// `CreateOrganization` on an organization that already exists.
    #[error("organization already exists")]
    AlreadyExists,
    /// Any other command before `CreateOrganization`.
    #[error("organization not found")]
    NotFound,
    /// The name is blank.
    #[error("organization name must not be empty")]
    EmptyName,
    /// The name is too long.
    #[error("organization name must be at most {max} characters long")]
    NameTooLong {
        /// The limit.
        max: usize,
    },
    /// The suspension reason is too long.
    #[error("suspension reason must be at most {max} characters long")]
    ReasonTooLong {
        /// The limit.
        max: usize,
    },
    /// The caller's role may not manage members at all.
    #[error("role `{role}` may not manage members")]
    NotPermitted {
        /// The caller's role.
        role: Role,
    },
    /// The acting user is not (or no longer) a member of this organization.
    #[error("you are not a member of this organization")]
    ActorNotAMember,
    /// Only owners may grant, change or remove the owner role.
    #[error("only an owner may grant, change or remove the owner role")]
    OwnerRoleRequired,
    /// The user is already a member.
    #[error("user is already a member of this organization")]
    AlreadyMember,
    /// The user is not a member.
    #[error("user is not a member of this organization")]
    NotAMember,
    /// The change would leave the organization without an owner.
    #[error("the last owner cannot be removed or demoted")]
    LastOwner,
    /// Suspending a suspended organization.
    #[error("organization is already suspended")]
    AlreadySuspended,
    /// Joining a suspended organization.
    #[error("the organization is suspended")]
    Suspended,
    /// The inviter was removed, or demoted to a role that may not grant the invited role,
    /// after sending the invitation: their outstanding invitations stop working.
    #[error("whoever sent this invitation may no longer invite to this organization with this role")]
    InviterNoLongerAuthorized,
    /// Reactivating an active organization.
    #[error("organization is not suspended")]
    NotSuspended,
    /// A plan limit is zero or over its maximum.
    #[error("`{quota}` must be between 1 and {max}, or absent for unlimited")]
    QuotaOutOfRange {
        /// Which limit.
        quota: QuotaName,
        /// Its maximum.
        max: u64,
    },
}
