//! Events of the organization aggregate. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::role::Role;

/// The event type of [`OrganizationEvent::Created`], the one event with an upcaster.
pub const CREATED_EVENT_TYPE: &str = "organization.created";
/// The current version of [`OrganizationEvent::Created`].
///
/// Version "1" stored `{name, owner}` where `owner` was the owner's user id; version "2"
/// renamed it to `owner_user_id`. [`crate::upcasting::upcasters`] lifts old payloads.
pub const CREATED_EVENT_VERSION: &str = "2";

/// What happened to an organization.
///
/// Serialized internally tagged: `{"type": "organization.created", ...}`, where `type` equals
/// [`DomainEvent::event_type`], so readers of the raw log need no Rust to dispatch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum OrganizationEvent {
    /// The organization came into being with its first owner (version 2, see
    /// [`CREATED_EVENT_VERSION`]).
    #[serde(rename = "organization.created")]
    Created {
        /// The trimmed name.
        name: String,
        /// The user who became its first owner.
        owner_user_id: Uuid,
    },
    /// The organization took a new name.
    #[serde(rename = "organization.renamed")]
    Renamed {
        /// The trimmed new name.
        name: String,
    },
    /// A user became a member with a role: the founder at creation (joining later is
    /// [`OrganizationEvent::MemberJoined`]; older logs hold direct additions too).
    #[serde(rename = "organization.member_added")]
    MemberAdded {
        /// The new member.
        user_id: Uuid,
        /// Their role.
        role: Role,
    },
    /// A user joined by accepting an invitation.
    #[serde(rename = "organization.member_joined")]
    MemberJoined {
        /// The new member.
        user_id: Uuid,
        /// Their role, as the invitation granted it.
        role: Role,
        /// The member who invited them.
        invited_by: Uuid,
        /// The accepted invitation.
        invitation_id: Uuid,
    },
    /// A member's role changed.
    #[serde(rename = "organization.member_role_changed")]
    MemberRoleChanged {
        /// The member.
        user_id: Uuid,
        /// Their new role.
        role: Role,
    },
    /// A member left or was removed.
    #[serde(rename = "organization.member_removed")]
    MemberRemoved {
        /// The former member.
        user_id: Uuid,
    },
    /// A platform administrator suspended the organization: its tokens and keys stop working.
    #[serde(rename = "organization.suspended")]
    Suspended {
        /// Why, as given by the administrator (may be empty).
        reason: String,
    },
    /// The suspension was lifted.
    #[serde(rename = "organization.reactivated")]
    Reactivated,
    /// A platform administrator replaced the plan limits; each absent (null) limit is
    /// unlimited. Recorded only when a limit changed.
    #[serde(rename = "organization.quotas_set")]
    QuotasSet {
        /// Prompt plus completion tokens per calendar month (UTC).
        tokens_per_month: Option<u64>,
        /// Runs not ended at once.
        concurrent_runs: Option<u32>,
        /// Authenticated requests per minute.
        requests_per_minute: Option<u32>,
    },
}

impl DomainEvent for OrganizationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Created { .. } => CREATED_EVENT_TYPE,
            Self::Renamed { .. } => "organization.renamed",
            Self::MemberAdded { .. } => "organization.member_added",
            Self::MemberJoined { .. } => "organization.member_joined",
            Self::MemberRoleChanged { .. } => "organization.member_role_changed",
            Self::MemberRemoved { .. } => "organization.member_removed",
            Self::Suspended { .. } => "organization.suspended",
            Self::Reactivated => "organization.reactivated",
            Self::QuotasSet { .. } => "organization.quotas_set",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::Created { .. } => CREATED_EVENT_VERSION,
            _ => "1",
        }
        .to_owned()
    }
}
