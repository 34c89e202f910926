use domain::Role;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, Text};

/// Organization members and roles.
pub struct MembersApi;

/// A role in an organization.
#[derive(Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
enum RoleName {
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

/// Who to add, with which role. The user must have registered.
#[derive(Object)]
struct AddMemberRequest {
    /// The email the user registered with.
    email: Text,
    /// The role to give; only an owner may give `owner`.
    role: RoleName,
}

/// A new role.
#[derive(Object)]
struct ChangeRoleRequest {
    /// The member's new role; only an owner may give or take `owner`.
    role: RoleName,
}

/// A member.
#[derive(Object)]
struct MemberView {
    /// The member's user id.
    user_id: Uuid,
    /// The member's email.
    email: String,
    /// The member's role in this organization.
    role: RoleName,
}

/// The organization's members.
#[derive(Object)]
struct MemberList {
    /// Every member of the organization.
    members: Vec<MemberView>,
}

#[derive(ApiResponse)]
enum MemberAdded {
    /// Added.
    #[oai(status = 201)]
    Added(Json<MemberView>),
}

#[derive(ApiResponse)]
enum MemberChanged {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(tag = "ApiTags::Members")]
impl MembersApi {
    /// List the organization's members (any role).
    #[oai(path = "/members", method = "get")]
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

    /// Add a registered user to the organization (owners and admins; only owners grant owner).
    #[oai(path = "/members", method = "post")]
    async fn add(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        body: Json<AddMemberRequest>,
    ) -> Result<MemberAdded, ApiError> {
        let request_id = request_id.for_events();
        let member = state
            .identity
            .add_member(&auth.0, &body.email, body.role.into(), request_id)
            .await?;
        Ok(MemberAdded::Added(Json(MemberView {
            user_id: member.user_id,
            email: member.email,
            role: member.role.into(),
        })))
    }

    /// Change a member's role. The last owner cannot be demoted.
    #[oai(path = "/members/:user_id", method = "patch")]
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

    /// Remove a member. The last owner cannot be removed.
    #[oai(path = "/members/:user_id", method = "delete")]
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
