use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::roles::RoleName;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, EmailText, RequestId, Text};

/// Organization members and roles, and joining by invitation.
pub struct MembersApi;

/// Whom to invite, with which role. The address need not have an account yet.
#[derive(Object)]
struct InviteRequest {
    /// The invitee's email address; the invitation is mailed there.
    email: EmailText,
    /// The role the invitee gets on accepting (only owners may invite owners).
    role: RoleName,
}

/// The invitation that was mailed. It says nothing about whether the address has an account.
#[derive(Object)]
struct InvitationSent {
    /// The invitation's id.
    invitation_id: Uuid,
    /// When the mailed link stops working.
    expires_at: DateTime<Utc>,
}

/// The token from an invitation mail.
#[derive(Object)]
struct AcceptRequest {
    /// The `token` of the invitation link, as mailed.
    token: Text,
}

/// The organization joined.
#[derive(Object)]
struct JoinedView {
    /// The organization the caller is now a member of; log in with it as `org_id`.
    org_id: Uuid,
    /// The caller's role there.
    role: RoleName,
}

/// A new role.
#[derive(Object)]
struct ChangeRoleRequest {
    /// The member's new role (only owners grant, change or remove the owner role).
    role: RoleName,
}

/// A member.
#[derive(Object)]
struct MemberView {
    /// The member's user id.
    user_id: Uuid,
    /// The member's email address.
    email: String,
    /// The member's role in this organization.
    role: RoleName,
}

/// The organization's members.
#[derive(Object)]
struct MemberList {
    /// Every member, ordered by when they joined.
    members: Vec<MemberView>,
}

#[derive(ApiResponse)]
enum Invited {
    /// The invitation was mailed (the same answer whether or not the address has an account).
    #[oai(status = 202)]
    Accepted(Json<InvitationSent>),
}

#[derive(ApiResponse)]
enum MemberChanged {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(tag = "ApiTags::Members")]
impl MembersApi {
    /// List the organization's members
    ///
    /// Every member with their role, ordered by when they joined (any role may read).
    #[oai(path = "/members", method = "get", operation_id = "listMembers")]
    async fn list(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<MemberList>, ApiError> {
        let members = state.identity.list_members(&auth.0).await?;
        let members = members
            .into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                role: m.role.into(),
            })
            .collect();
        Ok(Json(MemberList { members }))
    }

    /// Invite an email address to the organization
    ///
    /// Owners and admins; only owners invite owners. A single-use link is mailed to the address, whether or not it has an account;
    /// nobody joins until they accept it. The inviter's email must be verified (403
    /// `email_not_verified`); an address that is already a member answers 409
    /// `already_member`; without a mail server, 503 `mail_unavailable`.
    #[oai(path = "/members", method = "post", operation_id = "inviteMember")]
    async fn invite(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        body: Json<InviteRequest>,
    ) -> Result<Invited, ApiError> {
        let request_id = request_id.for_events();
        let sent = state
            .identity
            .invite_member(&auth.0, &body.email, body.role.into(), request_id)
            .await?;
        Ok(Invited::Accepted(Json(InvitationSent {
            invitation_id: sent.invitation_id,
            expires_at: sent.expires_at,
        })))
    }

    /// Accept an invitation
    ///
    /// Logged in (as a user, not impersonated) with the invited address, the caller joins its organization with its role, and their email counts as verified.
    /// The token works once (409 `invitation_already_accepted`) and expires (409
    /// `invitation_expired`); unknown tokens are 404 `invitation_invalid`; a token mailed to
    /// another address is 403 `invitation_for_another_address`; an invitation whose sender
    /// was removed or demoted since is 403 `inviter_no_longer_authorized`.
    #[oai(
        path = "/invitations/accept",
        method = "post",
        operation_id = "acceptInvitation"
    )]
    async fn accept(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        body: Json<AcceptRequest>,
    ) -> Result<Json<JoinedView>, ApiError> {
        let joined = state
            .identity
            .accept_invitation(&auth.0, &body.token, request_id.for_events())
            .await?;
        Ok(Json(JoinedView {
            org_id: joined.org_id,
            role: joined.role.into(),
        }))
    }

    /// Change a member's role
    ///
    /// Owners and admins; only owners grant, change or remove the owner role. The last owner
    /// cannot be demoted (409 `last_owner`).
    #[oai(
        path = "/members/:user_id",
        method = "patch",
        operation_id = "changeMemberRole"
    )]
    async fn change_role(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The member's user id.
        user_id: Path<Uuid>,
        body: Json<ChangeRoleRequest>,
    ) -> Result<MemberChanged, ApiError> {
        let request_id = request_id.for_events();
        state
            .identity
            .change_member_role(&auth.0, user_id.0, body.role.into(), request_id)
            .await?;
        Ok(MemberChanged::Done)
    }

    /// Remove a member
    ///
    /// Owners and admins; only owners remove owners. The last owner cannot be removed (409
    /// `last_owner`). The member's credentials stop working from the answer on.
    #[oai(path = "/members/:user_id", method = "delete", operation_id = "removeMember")]
    async fn remove(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The member's user id.
        user_id: Path<Uuid>,
    ) -> Result<MemberChanged, ApiError> {
        state
            .identity
            .remove_member(&auth.0, user_id.0, request_id.for_events())
            .await?;
        Ok(MemberChanged::Done)
    }
}
