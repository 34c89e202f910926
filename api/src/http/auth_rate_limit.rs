//! The per-address budget of the unauthenticated identity routes (`/v1/auth/*`,
//! `AGENTRY_AUTH_RATE_LIMIT_PER_MINUTE`): they answer anyone, and login and registration each
//! cost a password hash, so one address may not spend the service's hashing or its mail.

use std::sync::Arc;

use commands::identity::ClientAddress;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};

use super::{ApiError, ErrorCode};
use crate::routes::AppState;

/// Wraps one `/v1/auth/*` operation (`#[oai(transform = "limit_by_address")]` on each, so
/// exactly those operations are limited however the path is spelled): a client address whose
/// bucket is empty gets 429 `auth_rate_limited` with `Retry-After` before anything is read.
pub fn limit_by_address<E: Endpoint + 'static>(endpoint: E) -> impl Endpoint {
    endpoint.around(|inner: Arc<E>, request: Request| async move {
        if let Some(refused) = refusal(&request) {
            return Ok(refused);
        }
        inner.call(request).await.map(IntoResponse::into_response)
    })
}

fn refusal(request: &Request) -> Option<Response> {
    let state = request.data::<AppState>()?;
    let client = request.data::<ClientAddress>()?;
    let wait = state
        .auth_rate_limits
        .check_key(format!("address:{client}"))
        .err()?;
    let detail = format!("too many requests to /v1/auth from this address; retry after {wait} s");
    Some(ApiError::too_many(ErrorCode::AuthRateLimited, detail, wait).into_response())
}
