use chrono::{DateTime, TimeDelta, Utc};
use domain::organization::Quotas;
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

/// Credits to take back from an organization.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RefundRequest {
    /// How many credits.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000000")))]
    credits: u64,
    /// Why (1–500 characters, trimmed); recorded on the ledger entry.
    #[oai(validator(min_length = 1, max_length = 500))]
    reason: Text,
    /// The purchase to refund (its Checkout Session, `cs_…`): the credits come out of it (at
    /// most what is left of it) and its money is refunded through Stripe in proportion.
    #[oai(validator(max_length = 255, pattern = "^cs_[A-Za-z0-9_]+$"))]
    checkout_session_id: Option<String>,
}

/// A money refund asked of Stripe.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct StripeRefundBody {
    /// Cents asked for: the purchase's price times the share of its credits taken back.
    amount: u64,
    /// The Stripe refund (`re_…`) when Stripe accepted it.
    refund_id: Option<String>,
    /// Why it failed otherwise; the credits are taken back all the same (refund the money
    /// from Stripe's dashboard: its `charge.refunded` takes nothing more back).
    error: Option<String>,
}

/// What the refund did.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RefundResponse {
    /// The ledger entry recording it (an event in the organization's log, with the
    /// administrator as actor).
    event_id: Uuid,
    /// Credits taken back.
    credits: u64,
    /// The organization's balance after it (below zero when it had spent them).
    balance: i64,
    /// The money refund, when a purchase was named.
    stripe_refund: Option<StripeRefundBody>,
}

#[derive(ApiResponse)]
enum Refunded {
    /// Recorded.
    #[oai(status = 201)]
    Refunded(Json<RefundResponse>),
}

/// An organization's plan limits. The whole plan is replaced: a limit left out is unlimited.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PlanLimits {
    /// Prompt plus completion tokens per calendar month (UTC), 1 to 10^12. Runs started once
    /// the month's use reaches it get 402 `token_quota_exceeded`.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    tokens_per_month: Option<u64>,
    /// Runs not ended at once (queued, running, awaiting approval or credits), 1 to 10,000.
    /// A start at the limit gets 429 `concurrent_run_limit`.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    concurrent_runs: Option<u32>,
    /// Authenticated requests per minute by all the organization's credentials together, on
    /// each node, 1 to 1,000,000. Over it: 429 `organization_rate_limited`.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    requests_per_minute: Option<u32>,
}

impl From<Quotas> for PlanLimits {
    fn from(quotas: Quotas) -> Self {
        Self {
            tokens_per_month: quotas.tokens_per_month,
            concurrent_runs: quotas.concurrent_runs,
            requests_per_minute: quotas.requests_per_minute,
        }
    }
}

impl From<PlanLimits> for Quotas {
    fn from(limits: PlanLimits) -> Self {
        Self {
            tokens_per_month: limits.tokens_per_month,
            concurrent_runs: limits.concurrent_runs,
            requests_per_minute: limits.requests_per_minute,
        }
    }
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

    /// Take credits back from an organization
    ///
    /// Platform administrators only. Records a refund entry in the organization's ledger with
    /// the reason and the administrator as actor (so the audit log shows it). Naming a purchase
    /// (`checkout_session_id`) takes the credits from it and refunds its money through Stripe.
    #[oai(
        path = "/admin/orgs/:id/refunds",
        method = "post",
        operation_id = "refundCredits"
    )]
    async fn refund(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The organization's id.
        id: Path<Uuid>,
        body: Json<RefundRequest>,
    ) -> Result<Refunded, ApiError> {
        let body = body.0;
        let refund = state
            .billing
            .admin_refund(
                &auth.0,
                id.0,
                body.credits,
                &body.reason,
                body.checkout_session_id,
                request_id.for_events(),
            )
            .await?;
        Ok(Refunded::Refunded(Json(RefundResponse {
            event_id: refund.event_id,
            credits: refund.credits,
            balance: refund.balance,
            stripe_refund: refund.stripe_refund.map(|attempt| StripeRefundBody {
                amount: attempt.amount,
                refund_id: attempt.refund_id,
                error: attempt.error,
            }),
        })))
    }

    /// Set an organization's quotas
    ///
    /// Platform administrators only. Replaces the organization's plan limits (a limit left out
    /// is unlimited), recorded as `organization.quotas_set` with the administrator as actor
    /// (so the organization's audit log shows it); setting the limits in force records
    /// nothing. Run starts enforce the new limits from the answer on; the request rate within
    /// 5 seconds on every node. Answers the limits in force.
    #[oai(
        path = "/admin/orgs/:id/quotas",
        method = "put",
        operation_id = "setOrganizationQuotas"
    )]
    async fn set_quotas(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The organization's id.
        id: Path<Uuid>,
        body: Json<PlanLimits>,
    ) -> Result<Json<PlanLimits>, ApiError> {
        let quotas = state
            .identity
            .set_organization_quotas(&auth.0, id.0, body.0.into(), request_id.for_events())
            .await?;
        Ok(Json(quotas.into()))
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
