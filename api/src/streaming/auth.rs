//! Who opens a stream: a bearer credential like on every route, or a stream ticket in the query
//! (`?ticket=`), since browsers cannot set headers on an `EventSource` or a `WebSocket`.

use commands::identity::Caller;
use poem::{Request, RequestBody};
use poem_openapi::auth::ApiKey;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use uuid::Uuid;

use crate::http::{ApiError, BearerAuth};
use crate::routes::AppState;

/// A stream ticket (`POST /v1/stream-tickets`) as `?ticket=`: single-use, for one run, valid
/// 60 s, acting as the credentials that asked for it. For browsers, which cannot set
/// `Authorization` on an `EventSource` or a `WebSocket`.
#[derive(SecurityScheme)]
#[oai(
    rename = "StreamTicket",
    ty = "api_key",
    key_name = "ticket",
    key_in = "query"
)]
pub struct TicketAuth(ApiKey);

/// A stream route's credentials: the bearer header, or (when the query has `ticket`) a stream
/// ticket, which is redeemed once the route knows the run ([`StreamAuth::caller`]).
pub enum StreamAuth {
    /// Resolved by the bearer guard (and rate limited) like on every route.
    Bearer(Caller),
    /// Not redeemed yet.
    Ticket(String),
}

impl StreamAuth {
    /// The caller reading run `run_id`: the bearer's, or the ticket's once used for this run
    /// (a ticket is used up by this, whatever follows). Rate limited like every request.
    pub async fn caller(self, state: &AppState, run_id: Uuid) -> Result<Caller, ApiError> {
        match self {
            Self::Bearer(caller) => Ok(caller),
            Self::Ticket(ticket) => {
                let caller = state.identity.redeem_stream_ticket(&ticket, run_id).await?;
                crate::http::check_rate_limits(&state.rate_limits, &state.org_rate_limits, caller.ids())
                    .await?;
                Ok(caller)
            }
        }
    }
}

/// Whether the query names a `ticket` (even empty: it is then refused as a ticket, never
/// taken for an absent one).
fn has_ticket(request: &Request) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|query| url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "ticket"))
}

impl<'a> ApiExtractor<'a> for StreamAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerAuth as ApiExtractor>::register(registry);
        <TicketAuth as ApiExtractor>::register(registry);
    }

    /// Either scheme: the document lists them as alternatives.
    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = <BearerAuth as ApiExtractor>::security_schemes();
        schemes.extend(<TicketAuth as ApiExtractor>::security_schemes());
        schemes
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if has_ticket(request) {
            let TicketAuth(ticket) = TicketAuth::from_request(request, body, options).await?;
            return Ok(Self::Ticket(ticket.key));
        }
        let BearerAuth(caller) = BearerAuth::from_request(request, body, options).await?;
        Ok(Self::Bearer(caller))
    }
}
