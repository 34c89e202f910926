//! Roles a user holds inside one organization, and what each may do.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A member's role in an organization.
///
/// Roles live in the organization aggregate (a user may hold different roles in different
/// organizations) and are checked by the API guard through the `can_*` methods, so the rules
/// of who may do what are written once, here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(description = "A member's role in an organization.")]
pub enum Role {
    /// Full control, including the owner role itself; an organization always keeps one.
    Owner,
    /// Manages members and API keys, but cannot grant, change or remove the owner role.
    Admin,
    /// Uses the product: agents, conversations, runs.
    Member,
    /// Reads audit logs and history; never writes.
    Auditor,
}

impl Role {
    /// Every role, for exhaustive tests and documentation.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Auditor];

    /// Whether this role may invite, remove and re-role members (owners and admins).
    pub fn can_manage_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether this role may create and revoke the organization's API keys (owners and admins).
    pub fn can_manage_api_keys(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether this role may read the audit log (owners, admins and auditors).
    pub fn can_read_audit(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Auditor)
    }

    /// Whether this role may read the organization's credit balance and ledger (owners, admins
    /// and auditors: spending is the business's figure, not every member's).
    pub fn can_read_billing(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Auditor)
    }

    /// Whether this role may buy credits (owners and admins).
    pub fn can_buy_credits(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether this role may change anything at all (everyone but auditors).
    pub fn can_write(self) -> bool {
        !matches!(self, Role::Auditor)
    }

    /// Whether this role may grant `target` to someone, or take it away from them.
    ///
    /// Member managers may handle every role except `owner`, which only owners may touch:
    /// otherwise an admin could promote themself and take the organization over.
    pub fn can_manage_role(self, target: Role) -> bool {
        self.can_manage_members() && (target != Role::Owner || self == Role::Owner)
    }

    /// The stable lowercase name used in JSON, tokens and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role; the API turns it into a 422 naming the accepted values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected one of owner, admin, member, auditor")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    /// Parses the lowercase name (ASCII case is ignored, so `Admin` is accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_name() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
    }

    #[test]
    fn an_unknown_role_name_is_rejected() {
        assert_eq!("root".parse::<Role>(), Err(ParseRoleError("root".into())));
    }

    #[test]
    fn only_owners_and_admins_manage_members_and_keys() {
        let managers: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.can_manage_members() && r.can_manage_api_keys())
            .collect();
        assert_eq!(managers, vec![Role::Owner, Role::Admin]);
    }

    #[test]
    fn auditors_read_audit_but_cannot_write() {
        assert!(Role::Auditor.can_read_audit());
        assert!(!Role::Auditor.can_write());
        assert!(!Role::Member.can_read_audit());
        assert!(Role::Member.can_write());
    }

    #[test]
    fn admins_cannot_touch_the_owner_role_but_owners_can() {
        assert!(!Role::Admin.can_manage_role(Role::Owner));
        assert!(Role::Admin.can_manage_role(Role::Auditor));
        assert!(Role::Owner.can_manage_role(Role::Owner));
        assert!(!Role::Member.can_manage_role(Role::Member));
    }
}
