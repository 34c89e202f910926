use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::roles::RoleName;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth};

/// The caller.
pub struct MeApi;

/// Who the credentials act as.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MeResponse {
    /// The user (absent for an API key).
    user_id: Option<Uuid>,
    /// The user's email (absent for an API key).
    email: Option<String>,
    /// Whether the user verified their email (absent for an API key). An unverified user may
    /// use their organization but not invite members; `POST /v1/auth/verify-email/resend`
    /// mails a new link.
    email_verified: Option<bool>,
    /// The API key (for an API key).
    api_key_id: Option<Uuid>,
    /// The organization (absent only for a platform administrator's own token).
    org_id: Option<Uuid>,
    /// The caller's role in the organization (absent without an organization).
    role: Option<RoleName>,
    /// The platform administrator impersonating this user, when this is an impersonation token.
    impersonator_id: Option<Uuid>,
    /// Whether the caller is a platform administrator.
    is_platform_admin: bool,
}

#[OpenApi(tag = "ApiTags::Me")]
impl MeApi {
    /// Who am I
    ///
    /// The user (with whether their email is verified) or API key the credentials act as, the
    /// organization and role, and the impersonator if any.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<MeResponse>, ApiError> {
        let caller = auth.0;
        let profile = match caller.user_id {
            Some(user_id) => state.identity.user_profile(user_id).await?,
            None => None,
        };
        let (email, email_verified) = match profile {
            Some(profile) => (Some(profile.email), Some(profile.email_verified)),
            None => (None, None),
        };
        Ok(Json(MeResponse {
            user_id: caller.user_id,
            email,
            email_verified,
            api_key_id: caller.api_key_id,
            org_id: caller.org_id,
            role: caller.role.map(RoleName::from),
            impersonator_id: caller.impersonator_id,
            is_platform_admin: caller.is_platform_admin,
        }))
    }
}
