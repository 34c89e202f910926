use commands::identity::{Caller, CallerIds, GuardedCaller, IdentityError};
use poem::{Request, RequestBody};
use poem_openapi::auth::{Bearer, BearerAuthorization};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};

use super::ApiError;
use crate::routes::AppState;

/// `Authorization: Bearer <access token or API key>`. Resolves the caller (organization, user
/// or key, role) for every `/v1` route but the writes that take [`WriteBearerAuth`], and
/// applies the rate limits (the caller's and its organization's).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", key_name = "Authorization", checker = "resolve_caller")]
pub struct BearerAuth(pub Caller);

async fn resolve_caller(request: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = app_state(request)?;
    let resolved = state.identity.authenticate(&bearer.token).await;
    counted(state, resolved, Caller::ids).await
}

/// [`BearerAuth`] for a route whose write confirms the caller's standing in its own append
/// (`commands::identity::GuardedCaller`): a user's standing may come from this process's
/// memory instead of a query. The same scheme in the OpenAPI document, the same rate limits.
pub struct WriteBearerAuth(pub GuardedCaller);

impl<'a> ApiExtractor<'a> for WriteBearerAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerAuth as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <BearerAuth as ApiExtractor>::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bearer = <Bearer as BearerAuthorization>::from_request(request)?;
        let state = app_state(request)?;
        let resolved = state.identity.authenticate_for_write(&bearer.token).await;
        Ok(Self(counted(state, resolved, GuardedCaller::ids).await?))
    }
}

/// The caller `resolved`, once its request is counted against its own and its organization's
/// rate limits (over them: 429).
async fn counted<T>(
    state: &AppState,
    resolved: Result<T, IdentityError>,
    ids: fn(&T) -> CallerIds,
) -> poem::Result<T> {
    let caller = resolved.map_err(ApiError::from)?;
    super::check_rate_limits(&state.rate_limits, &state.org_rate_limits, ids(&caller)).await?;
    Ok(caller)
}

fn app_state(request: &Request) -> poem::Result<&AppState> {
    Ok(request
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(&"application state missing from the request"))?)
}
