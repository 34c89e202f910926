use chrono::{DateTime, TimeDelta, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, Text};

/// Platform administration (platform administrators only).
pub struct AdminApi;

/// Whom to impersonate, why, and for how long.
#[derive(Object)]
struct ImpersonationRequest {
    /// The user to act as.
    user_id: Uuid,
    /// The organization to act in; the user must be a member.
    org_id: Uuid,
    /// Why (1–500 characters, trimmed); recorded with every event written under the token.
    #[oai(validator(min_length = 1, max_length = 500))]
    reason: Text,
    /// 1 to 3600 seconds.
    #[oai(validator(minimum(value = "1"), maximum(value = "3600")))]
    ttl_seconds: i64,
}

/// An access token acting as the user, marked as an impersonation.
#[derive(Object)]
struct ImpersonationResponse {
    /// The impersonation, to end it early with `POST /v1/admin/impersonations/{id}/end`.
    impersonation_id: Uuid,
    /// Bearer token acting as the user; refused once the impersonation ends or expires.
    access_token: String,
    /// When the token stops working at the latest.
    expires_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
enum Impersonating {
    /// Started.
    #[oai(status = 201)]
    Started(Json<ImpersonationResponse>),
}

#[derive(ApiResponse)]
enum Done {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Impersonate a user in one of their organizations
    ///
    /// Platform administrators only. Answers an access token acting as the user, marked as an
    /// impersonation, for at most an hour; the reason is recorded with every event written
    /// under it.
    #[oai(
        path = "/admin/impersonations",
        method = "post",
        operation_id = "startImpersonation"
    )]
    async fn impersonate(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        body: Json<ImpersonationRequest>,
    ) -> Result<Impersonating, ApiError> {
        let ttl = TimeDelta::seconds(body.ttl_seconds);
        let request_id = request_id.for_events();
        let started = state
            .identity
            .impersonate(&auth.0, body.user_id, body.org_id, &body.reason, ttl, request_id)
            .await?;
        Ok(Impersonating::Started(Json(ImpersonationResponse {
            impersonation_id: started.impersonation_id,
            access_token: started.access_token,
            expires_at: started.expires_at,
        })))
    }

    /// End an impersonation early
    ///
    /// Its token is refused from the answer on. Any platform administrator may end any impersonation; ending an ended one is a no-op.
    #[oai(
        path = "/admin/impersonations/:id/end",
        method = "post",
        operation_id = "endImpersonation"
    )]
    async fn end_impersonation(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The impersonation, as its start answered it.
        id: Path<Uuid>,
    ) -> Result<Done, ApiError> {
        state
            .identity
            .end_impersonation(&auth.0, id.0, request_id.for_events())
            .await?;
        Ok(Done::Done)
    }

    /// Suspend an organization
    ///
    /// Platform administrators only. The organization's tokens and keys get 403
    /// `organization_suspended` until it is reactivated.
    #[oai(
        path = "/admin/orgs/:id/suspend",
        method = "post",
        operation_id = "suspendOrganization"
    )]
    async fn suspend(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The organization's id.
        id: Path<Uuid>,
        /// Why (optional, at most 500 characters, recorded on the event).
        #[oai(validator(max_length = 500))]
        reason: Query<Option<Text>>,
    ) -> Result<Done, ApiError> {
        let reason = reason.0.unwrap_or_default().0;
        state
            .identity
            .suspend_organization(&auth.0, id.0, &reason, request_id.for_events())
            .await?;
        Ok(Done::Done)
    }

    /// Reactivate a suspended organization
    ///
    /// Platform administrators only. Its tokens and keys work again from the answer on.
    #[oai(
        path = "/admin/orgs/:id/reactivate",
        method = "post",
        operation_id = "reactivateOrganization"
    )]
    async fn reactivate(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The organization's id.
        id: Path<Uuid>,
    ) -> Result<Done, ApiError> {
        state
            .identity
            .reactivate_organization(&auth.0, id.0, request_id.for_events())
            .await?;
        Ok(Done::Done)
    }
}
