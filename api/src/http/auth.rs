use commands::identity::Caller;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::ApiError;
use crate::routes::AppState;

/// `Authorization: Bearer <access token or API key>`. The one place that resolves the caller
/// (organization, user or key, role) for every `/v1` route, and applies the rate limits (the
/// caller's and its organization's).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", key_name = "Authorization", checker = "resolve_caller")]
pub struct BearerAuth(pub Caller);

async fn resolve_caller(request: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = request
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(&"application state missing from the request"))?;
    let caller = state
        .identity
        .authenticate(&bearer.token)
        .await
        .map_err(ApiError::from)?;
    super::check_rate_limits(&state.rate_limits, &state.org_rate_limits, &caller).await?;
    Ok(caller)
}
