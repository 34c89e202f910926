//! The organization aggregate: state, decisions and how events change the state.

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{OrganizationCommand, OrganizationError, OrganizationEvent, Quotas};
use crate::role::Role;
use crate::sink::write_all;
use crate::text::{TextError, trimmed};

/// Longest organization name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest suspension reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

type Decision = Result<Vec<OrganizationEvent>, OrganizationError>;

/// A tenant: everything in Agentry belongs to exactly one organization.
///
/// The aggregate id is the organization id. Members live here (not on the user) so that the
/// "always one owner" rule is decided inside one consistency boundary.
#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Organization {
    created: bool,
    name: String,
    members: BTreeMap<Uuid, Role>,
    suspended: bool,
    #[serde(default)]
    quotas: Quotas,
}

impl Organization {
    /// Whether `CreateOrganization` has happened.
    pub fn exists(&self) -> bool {
        self.created
    }

    /// The current name (empty before creation).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role `user_id` holds here, or `None` when they are not a member.
    pub fn role_of(&self, user_id: Uuid) -> Option<Role> {
        self.members.get(&user_id).copied()
    }

    /// Every member and their role, ordered by user id.
    pub fn members(&self) -> &BTreeMap<Uuid, Role> {
        &self.members
    }

    /// Whether the organization is suspended (its tokens and keys answer 403).
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// The plan limits (unlimited until a platform administrator sets them).
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    fn owner_count(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }

    fn require_exists(&self) -> Result<(), OrganizationError> {
        if self.created {
            Ok(())
        } else {
            Err(OrganizationError::NotFound)
        }
    }

    fn current_role(&self, user_id: Uuid) -> Result<Role, OrganizationError> {
        self.role_of(user_id).ok_or(OrganizationError::NotAMember)
    }

    fn create(&self, name: &str, owner_user_id: Uuid) -> Decision {
        if self.created {
            return Err(OrganizationError::AlreadyExists);
        }
        let name = valid_name(name)?;
        // Membership has one event type from the start, so read models that list members
        // never special-case the founder.
        Ok(vec![
            OrganizationEvent::Created { name, owner_user_id },
            OrganizationEvent::MemberAdded {
                user_id: owner_user_id,
                role: Role::Owner,
            },
        ])
    }

    fn rename(&self, name: &str) -> Decision {
        self.require_exists()?;
        let name = valid_name(name)?;
        Ok(vec![OrganizationEvent::Renamed { name }])
    }

    /// The acting user's role, from this aggregate's own member list: authorization must not
    /// come from a read model, which can lag behind a demotion or a removal.
    fn acting_role(&self, by: Uuid) -> Result<Role, OrganizationError> {
        self.role_of(by).ok_or(OrganizationError::ActorNotAMember)
    }

    fn require_active(&self) -> Result<(), OrganizationError> {
        self.require_exists()?;
        if self.suspended {
            return Err(OrganizationError::Suspended);
        }
        Ok(())
    }

    /// Whether `by` may invite someone with `role` now: checked before an invitation is
    /// mailed. Acceptance decides again (see `join_by_invitation`).
    pub fn check_invitation(&self, by: Uuid, role: Role) -> Result<(), OrganizationError> {
        self.require_active()?;
        may_manage(self.acting_role(by)?, role)
    }

    /// The inviter's authority is decided again from this aggregate's own member list, so a
    /// removal or demotion after sending stops the invitation.
    fn join_by_invitation(
        &self,
        user_id: Uuid,
        role: Role,
        invited_by: Uuid,
        invitation_id: Uuid,
    ) -> Decision {
        self.require_active()?;
        let inviter = self
            .role_of(invited_by)
            .ok_or(OrganizationError::InviterNoLongerAuthorized)?;
        may_manage(inviter, role).map_err(|_| OrganizationError::InviterNoLongerAuthorized)?;
        if self.members.contains_key(&user_id) {
            return Err(OrganizationError::AlreadyMember);
        }
        Ok(vec![OrganizationEvent::MemberJoined {
            user_id,
            role,
            invited_by,
            invitation_id,
        }])
    }

    fn change_member_role(&self, user_id: Uuid, role: Role, by: Uuid) -> Decision {
        self.require_exists()?;
        let by_role = self.acting_role(by)?;
        may_manage(by_role, role)?;
        let current = self.current_role(user_id)?;
        may_manage(by_role, current)?;
        if current == role {
            return Ok(vec![]);
        }
        if current == Role::Owner && self.owner_count() == 1 {
            return Err(OrganizationError::LastOwner);
        }
        Ok(vec![OrganizationEvent::MemberRoleChanged { user_id, role }])
    }

    fn remove_member(&self, user_id: Uuid, by: Uuid) -> Decision {
        self.require_exists()?;
        let by_role = self.acting_role(by)?;
        require_manager(by_role)?;
        let current = self.current_role(user_id)?;
        may_manage(by_role, current)?;
        if current == Role::Owner && self.owner_count() == 1 {
            return Err(OrganizationError::LastOwner);
        }
        Ok(vec![OrganizationEvent::MemberRemoved { user_id }])
    }

    fn suspend(&self, reason: &str) -> Decision {
        self.require_exists()?;
        if self.suspended {
            return Err(OrganizationError::AlreadySuspended);
        }
        let reason =
            trimmed(reason, MAX_REASON_CHARS, true).map_err(|_| OrganizationError::ReasonTooLong {
                max: MAX_REASON_CHARS,
            })?;
        Ok(vec![OrganizationEvent::Suspended { reason }])
    }

    fn reactivate(&self) -> Decision {
        self.require_exists()?;
        if !self.suspended {
            return Err(OrganizationError::NotSuspended);
        }
        Ok(vec![OrganizationEvent::Reactivated])
    }

    /// Replaces the limits; setting the limits already in force records nothing.
    fn set_quotas(&self, quotas: Quotas) -> Decision {
        self.require_exists()?;
        let quotas = quotas.validated()?;
        if quotas == self.quotas {
            return Ok(vec![]);
        }
        Ok(vec![OrganizationEvent::QuotasSet {
            tokens_per_month: quotas.tokens_per_month,
            concurrent_runs: quotas.concurrent_runs,
            requests_per_minute: quotas.requests_per_minute,
        }])
    }
}

/// The caller's role must be one that manages members at all.
fn require_manager(by_role: Role) -> Result<(), OrganizationError> {
    if by_role.can_manage_members() {
        Ok(())
    } else {
        Err(OrganizationError::NotPermitted { role: by_role })
    }
}

/// The caller's role must manage members, and only owners touch the owner role.
fn may_manage(by_role: Role, target: Role) -> Result<(), OrganizationError> {
    require_manager(by_role)?;
    if !by_role.can_manage_role(target) {
        return Err(OrganizationError::OwnerRoleRequired);
    }
    Ok(())
}

fn valid_name(name: &str) -> Result<String, OrganizationError> {
    trimmed(name, MAX_NAME_CHARS, false).map_err(|e| match e {
        TextError::Empty => OrganizationError::EmptyName,
        TextError::TooLong => OrganizationError::NameTooLong { max: MAX_NAME_CHARS },
    })
}

impl Aggregate for Organization {
    const TYPE: &'static str = "organization";
    type Command = OrganizationCommand;
    type Event = OrganizationEvent;
    type Error = OrganizationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use OrganizationCommand as C;
        let events = match command {
            C::CreateOrganization { name, owner_user_id } => self.create(&name, owner_user_id)?,
            C::RenameOrganization { name } => self.rename(&name)?,
            C::JoinByInvitation {
                user_id,
                role,
                invited_by,
                invitation_id,
            } => self.join_by_invitation(user_id, role, invited_by, invitation_id)?,
            C::ChangeMemberRole { user_id, role, by } => self.change_member_role(user_id, role, by)?,
            C::RemoveMember { user_id, by } => self.remove_member(user_id, by)?,
            C::SuspendOrganization { reason } => self.suspend(&reason)?,
            C::ReactivateOrganization => self.reactivate()?,
            C::SetQuotas { quotas } => self.set_quotas(quotas)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OrganizationEvent::Created { name, owner_user_id } => {
                self.created = true;
                self.name = name;
                self.members.insert(owner_user_id, Role::Owner);
            }
            OrganizationEvent::Renamed { name } => self.name = name,
            OrganizationEvent::MemberAdded { user_id, role }
            | OrganizationEvent::MemberJoined { user_id, role, .. }
            | OrganizationEvent::MemberRoleChanged { user_id, role } => {
                self.members.insert(user_id, role);
            }
            OrganizationEvent::MemberRemoved { user_id } => {
                self.members.remove(&user_id);
            }
            OrganizationEvent::Suspended { .. } => self.suspended = true,
            OrganizationEvent::Reactivated => self.suspended = false,
            OrganizationEvent::QuotasSet {
                tokens_per_month,
                concurrent_runs,
                requests_per_minute,
            } => {
                self.quotas = Quotas {
                    tokens_per_month,
                    concurrent_runs,
                    requests_per_minute,
                };
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;
    use OrganizationCommand as C;
    use OrganizationEvent as E;

    fn org() -> TestFramework<Organization> {
        TestFramework::with(())
    }

    fn created(owner: Uuid) -> E {
        E::Created {
            name: "Acme".into(),
            owner_user_id: owner,
        }
    }

    fn added(user_id: Uuid, role: Role) -> E {
        E::MemberAdded { user_id, role }
    }

    #[test]
    fn creating_records_the_trimmed_name_and_the_owner() {
        let owner = Uuid::new_v4();
        let cmd = C::CreateOrganization {
            name: "  Acme \t".into(),
            owner_user_id: owner,
        };
        org()
            .given_no_previous_events()
            .when(cmd)
            .then_expect_events(vec![created(owner), added(owner, Role::Owner)]);
    }

    #[test]
    fn the_creator_becomes_owner() {
        let owner = Uuid::new_v4();
        let mut state = Organization::default();
        state.apply(created(owner));
        assert!(state.exists());
        assert_eq!(state.role_of(owner), Some(Role::Owner));
    }

    #[test]
    fn an_organization_cannot_be_created_twice() {
        let cmd = C::CreateOrganization {
            name: "Again".into(),
            owner_user_id: Uuid::new_v4(),
        };
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(cmd)
            .then_expect_error(OrganizationError::AlreadyExists);
    }

    #[test]
    fn a_blank_name_is_rejected() {
        let cmd = C::CreateOrganization {
            name: "   ".into(),
            owner_user_id: Uuid::new_v4(),
        };
        org()
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(OrganizationError::EmptyName);
    }

    #[test]
    fn a_name_over_100_characters_is_rejected() {
        let cmd = C::RenameOrganization {
            name: "x".repeat(101),
        };
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(cmd)
            .then_expect_error(OrganizationError::NameTooLong { max: 100 });
    }

    #[test]
    fn renaming_records_the_trimmed_name() {
        let cmd = C::RenameOrganization {
            name: " Acme 2 ".into(),
        };
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(cmd)
            .then_expect_events(vec![E::Renamed {
                name: "Acme 2".into(),
            }]);
    }

    #[test]
    fn commands_on_an_organization_never_created_are_not_found() {
        let cmd = C::RenameOrganization { name: "Acme".into() };
        org()
            .given_no_previous_events()
            .when(cmd)
            .then_expect_error(OrganizationError::NotFound);
    }

    fn join(user_id: Uuid, role: Role, invited_by: Uuid) -> C {
        C::JoinByInvitation {
            user_id,
            role,
            invited_by,
            invitation_id: Uuid::nil(),
        }
    }

    #[test]
    fn an_invitee_of_an_admin_joins_with_the_invited_role() {
        let (inviter, user) = (Uuid::new_v4(), Uuid::new_v4());
        org()
            .given(vec![created(Uuid::new_v4()), added(inviter, Role::Admin)])
            .when(join(user, Role::Member, inviter))
            .then_expect_events(vec![E::MemberJoined {
                user_id: user,
                role: Role::Member,
                invited_by: inviter,
                invitation_id: Uuid::nil(),
            }]);
    }

    #[test]
    fn a_member_may_not_invite() {
        let acting = Uuid::new_v4();
        let mut state = Organization::default();
        state.apply(created(Uuid::new_v4()));
        state.apply(added(acting, Role::Member));
        assert_eq!(
            state.check_invitation(acting, Role::Member),
            Err(OrganizationError::NotPermitted { role: Role::Member })
        );
    }

    #[test]
    fn an_admin_may_not_invite_an_owner() {
        let acting = Uuid::new_v4();
        let mut state = Organization::default();
        state.apply(created(Uuid::new_v4()));
        state.apply(added(acting, Role::Admin));
        assert_eq!(
            state.check_invitation(acting, Role::Owner),
            Err(OrganizationError::OwnerRoleRequired)
        );
        assert_eq!(state.check_invitation(acting, Role::Admin), Ok(()));
    }

    #[test]
    fn nobody_may_invite_to_a_suspended_organization() {
        let owner = Uuid::new_v4();
        let mut state = Organization::default();
        state.apply(created(owner));
        state.apply(E::Suspended {
            reason: String::new(),
        });
        assert_eq!(
            state.check_invitation(owner, Role::Member),
            Err(OrganizationError::Suspended)
        );
    }

    #[test]
    fn joining_a_suspended_organization_is_refused() {
        let owner = Uuid::new_v4();
        org()
            .given(vec![
                created(owner),
                E::Suspended {
                    reason: String::new(),
                },
            ])
            .when(join(Uuid::new_v4(), Role::Member, owner))
            .then_expect_error(OrganizationError::Suspended);
    }

    #[test]
    fn joining_twice_is_rejected() {
        let owner = Uuid::new_v4();
        org()
            .given(vec![created(owner)])
            .when(join(owner, Role::Member, owner))
            .then_expect_error(OrganizationError::AlreadyMember);
    }

    #[test]
    fn the_invitation_of_a_removed_inviter_stops_working() {
        let (owner, inviter) = (Uuid::new_v4(), Uuid::new_v4());
        org()
            .given(vec![
                created(owner),
                added(inviter, Role::Admin),
                E::MemberRemoved { user_id: inviter },
            ])
            .when(join(Uuid::new_v4(), Role::Member, inviter))
            .then_expect_error(OrganizationError::InviterNoLongerAuthorized);
    }

    #[test]
    fn the_invitation_of_a_demoted_inviter_stops_working() {
        let (owner, inviter) = (Uuid::new_v4(), Uuid::new_v4());
        org()
            .given(vec![
                created(owner),
                added(inviter, Role::Admin),
                E::MemberRoleChanged {
                    user_id: inviter,
                    role: Role::Member,
                },
            ])
            .when(join(Uuid::new_v4(), Role::Member, inviter))
            .then_expect_error(OrganizationError::InviterNoLongerAuthorized);
    }

    #[test]
    fn an_owner_invitation_from_an_admin_cannot_be_accepted() {
        let inviter = Uuid::new_v4();
        org()
            .given(vec![created(Uuid::new_v4()), added(inviter, Role::Admin)])
            .when(join(Uuid::new_v4(), Role::Owner, inviter))
            .then_expect_error(OrganizationError::InviterNoLongerAuthorized);
    }

    #[test]
    fn an_owner_promotes_a_member_to_owner() {
        let acting = Uuid::new_v4();
        let user = Uuid::new_v4();
        let cmd = C::ChangeMemberRole {
            user_id: user,
            role: Role::Owner,
            by: acting,
        };
        org()
            .given(vec![
                created(Uuid::new_v4()),
                added(user, Role::Member),
                added(acting, Role::Owner),
            ])
            .when(cmd)
            .then_expect_events(vec![E::MemberRoleChanged {
                user_id: user,
                role: Role::Owner,
            }]);
    }

    #[test]
    fn changing_the_role_of_a_non_member_is_rejected() {
        let acting = Uuid::new_v4();
        let cmd = C::ChangeMemberRole {
            user_id: Uuid::new_v4(),
            role: Role::Admin,
            by: acting,
        };
        org()
            .given(vec![created(Uuid::new_v4()), added(acting, Role::Owner)])
            .when(cmd)
            .then_expect_error(OrganizationError::NotAMember);
    }

    #[test]
    fn an_admin_cannot_demote_an_owner() {
        let acting = Uuid::new_v4();
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let cmd = C::ChangeMemberRole {
            user_id: first,
            role: Role::Member,
            by: acting,
        };
        org()
            .given(vec![
                created(first),
                added(second, Role::Owner),
                added(acting, Role::Admin),
            ])
            .when(cmd)
            .then_expect_error(OrganizationError::OwnerRoleRequired);
    }

    #[test]
    fn the_last_owner_cannot_be_demoted() {
        let owner = Uuid::new_v4();
        let cmd = C::ChangeMemberRole {
            user_id: owner,
            role: Role::Admin,
            by: owner,
        };
        org()
            .given(vec![created(owner)])
            .when(cmd)
            .then_expect_error(OrganizationError::LastOwner);
    }

    #[test]
    fn setting_the_role_a_member_already_has_records_nothing() {
        let acting = Uuid::new_v4();
        let user = Uuid::new_v4();
        let cmd = C::ChangeMemberRole {
            user_id: user,
            role: Role::Auditor,
            by: acting,
        };
        org()
            .given(vec![
                created(Uuid::new_v4()),
                added(user, Role::Auditor),
                added(acting, Role::Admin),
            ])
            .when(cmd)
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_owner_is_removed_while_another_owner_remains() {
        let acting = Uuid::new_v4();
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let cmd = C::RemoveMember {
            user_id: first,
            by: acting,
        };
        org()
            .given(vec![
                created(first),
                added(second, Role::Owner),
                added(acting, Role::Owner),
            ])
            .when(cmd)
            .then_expect_events(vec![E::MemberRemoved { user_id: first }]);
    }

    #[test]
    fn the_last_owner_cannot_be_removed() {
        let owner = Uuid::new_v4();
        let cmd = C::RemoveMember {
            user_id: owner,
            by: owner,
        };
        org()
            .given(vec![created(owner)])
            .when(cmd)
            .then_expect_error(OrganizationError::LastOwner);
    }

    #[test]
    fn an_admin_cannot_remove_an_owner() {
        let acting = Uuid::new_v4();
        let owner = Uuid::new_v4();
        let cmd = C::RemoveMember {
            user_id: owner,
            by: acting,
        };
        org()
            .given(vec![created(owner), added(acting, Role::Admin)])
            .when(cmd)
            .then_expect_error(OrganizationError::OwnerRoleRequired);
    }

    #[test]
    fn an_auditor_cannot_remove_members() {
        let acting = Uuid::new_v4();
        let user = Uuid::new_v4();
        let cmd = C::RemoveMember {
            user_id: user,
            by: acting,
        };
        org()
            .given(vec![
                created(Uuid::new_v4()),
                added(user, Role::Member),
                added(acting, Role::Auditor),
            ])
            .when(cmd)
            .then_expect_error(OrganizationError::NotPermitted { role: Role::Auditor });
    }

    #[test]
    fn removing_a_non_member_is_rejected() {
        let acting = Uuid::new_v4();
        let cmd = C::RemoveMember {
            user_id: Uuid::new_v4(),
            by: acting,
        };
        org()
            .given(vec![created(Uuid::new_v4()), added(acting, Role::Owner)])
            .when(cmd)
            .then_expect_error(OrganizationError::NotAMember);
    }

    #[test]
    fn a_demoted_admin_may_no_longer_manage_members() {
        let (owner, former_admin) = (Uuid::new_v4(), Uuid::new_v4());
        let cmd = C::RemoveMember {
            user_id: owner,
            by: former_admin,
        };
        org()
            .given(vec![
                created(owner),
                added(former_admin, Role::Admin),
                E::MemberRoleChanged {
                    user_id: former_admin,
                    role: Role::Member,
                },
            ])
            .when(cmd)
            .then_expect_error(OrganizationError::NotPermitted { role: Role::Member });
    }

    #[test]
    fn a_removed_admin_may_no_longer_manage_members() {
        let (owner, former_admin, member) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let cmd = C::RemoveMember {
            user_id: member,
            by: former_admin,
        };
        org()
            .given(vec![
                created(owner),
                added(former_admin, Role::Admin),
                added(member, Role::Member),
                E::MemberRemoved {
                    user_id: former_admin,
                },
            ])
            .when(cmd)
            .then_expect_error(OrganizationError::ActorNotAMember);
    }

    #[test]
    fn suspending_records_the_trimmed_reason() {
        let cmd = C::SuspendOrganization {
            reason: " unpaid ".into(),
        };
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(cmd)
            .then_expect_events(vec![E::Suspended {
                reason: "unpaid".into(),
            }]);
    }

    #[test]
    fn a_suspended_organization_cannot_be_suspended_again() {
        let cmd = C::SuspendOrganization {
            reason: String::new(),
        };
        org()
            .given(vec![
                created(Uuid::new_v4()),
                E::Suspended {
                    reason: String::new(),
                },
            ])
            .when(cmd)
            .then_expect_error(OrganizationError::AlreadySuspended);
    }

    #[test]
    fn an_active_organization_cannot_be_reactivated() {
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(C::ReactivateOrganization)
            .then_expect_error(OrganizationError::NotSuspended);
    }

    #[test]
    fn reactivation_lifts_the_suspension() {
        let mut state = Organization::default();
        for event in [
            created(Uuid::new_v4()),
            E::Suspended {
                reason: String::new(),
            },
        ] {
            state.apply(event);
        }
        assert!(state.is_suspended());
        state.apply(E::Reactivated);
        assert!(!state.is_suspended());
    }

    fn limits(tokens: Option<u64>, runs: Option<u32>, requests: Option<u32>) -> Quotas {
        Quotas {
            tokens_per_month: tokens,
            concurrent_runs: runs,
            requests_per_minute: requests,
        }
    }

    #[test]
    fn setting_quotas_records_every_limit_absent_ones_as_unlimited() {
        let cmd = C::SetQuotas {
            quotas: limits(Some(1_000), Some(3), None),
        };
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(cmd)
            .then_expect_events(vec![E::QuotasSet {
                tokens_per_month: Some(1_000),
                concurrent_runs: Some(3),
                requests_per_minute: None,
            }]);
    }

    #[test]
    fn setting_the_quotas_in_force_records_nothing() {
        let set = E::QuotasSet {
            tokens_per_month: Some(1_000),
            concurrent_runs: None,
            requests_per_minute: None,
        };
        org()
            .given(vec![created(Uuid::new_v4()), set])
            .when(C::SetQuotas {
                quotas: limits(Some(1_000), None, None),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_quota_out_of_range_is_rejected() {
        org()
            .given(vec![created(Uuid::new_v4())])
            .when(C::SetQuotas {
                quotas: limits(None, None, Some(0)),
            })
            .then_expect_error(OrganizationError::QuotaOutOfRange {
                quota: crate::organization::QuotaName::RequestsPerMinute,
                max: 1_000_000,
            });
    }

    #[test]
    fn quotas_of_an_organization_never_created_are_not_found() {
        org()
            .given_no_previous_events()
            .when(C::SetQuotas {
                quotas: Quotas::default(),
            })
            .then_expect_error(OrganizationError::NotFound);
    }

    #[test]
    fn the_quotas_set_are_the_quotas_in_force() {
        let mut state = Organization::default();
        state.apply(created(Uuid::new_v4()));
        assert_eq!(state.quotas(), Quotas::default());
        state.apply(E::QuotasSet {
            tokens_per_month: None,
            concurrent_runs: Some(2),
            requests_per_minute: Some(60),
        });
        assert_eq!(state.quotas(), limits(None, Some(2), Some(60)));
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        let user_id = Uuid::new_v4();
        let events = [
            created(user_id),
            E::Renamed { name: "n".into() },
            added(user_id, Role::Admin),
            E::MemberJoined {
                user_id,
                role: Role::Member,
                invited_by: user_id,
                invitation_id: user_id,
            },
            E::MemberRoleChanged {
                user_id,
                role: Role::Member,
            },
            E::MemberRemoved { user_id },
            E::Suspended { reason: "r".into() },
            E::Reactivated,
            E::QuotasSet {
                tokens_per_month: Some(1),
                concurrent_runs: None,
                requests_per_minute: Some(2),
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
    }
}
