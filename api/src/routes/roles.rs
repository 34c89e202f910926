//! Roles as the API names them: one enum for every request and answer that carries a role.

use domain::Role;
use poem_openapi::Enum;

/// A role in an organization.
#[derive(Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub(super) enum RoleName {
    /// Everything, including the owner role; at least one per organization.
    Owner,
    /// Manages members (except owners) and API keys.
    Admin,
    /// Uses the product.
    Member,
    /// Reads audit and history; writes nothing.
    Auditor,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Owner => Self::Owner,
            RoleName::Admin => Self::Admin,
            RoleName::Member => Self::Member,
            RoleName::Auditor => Self::Auditor,
        }
    }
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
            Role::Auditor => Self::Auditor,
        }
    }
}
