use std::net::IpAddr;
use std::time::Instant;

use eventstore::RequestOrigin;

use poem::PathPattern;
use poem::http::header::USER_AGENT;
use poem::http::{HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::Instrument;
use uuid::Uuid;

/// The request being served, as the events it writes record it.
///
/// Its id is taken from a sane `X-Request-Id` or made up, logged on every line of the request,
/// and echoed in the response. The client's address is filled in by [`super::ResolveClient`]
/// (the peer, or what a trusted proxy names), the user agent from the `User-Agent` header. All
/// three go into the metadata of every event the request writes: the audit log's "from where".
#[derive(Clone, Debug)]
pub struct RequestId {
    id: String,
    client_ip: Option<IpAddr>,
    user_agent: Option<String>,
}

impl RequestId {
    /// The request as command metadata takes it.
    pub fn for_events(&self) -> Option<RequestOrigin> {
        let origin = RequestOrigin {
            request_id: self.id.clone(),
            client_ip: self.client_ip,
            user_agent: None,
        };
        Some(match &self.user_agent {
            Some(user_agent) => origin.with_user_agent(user_agent),
            None => origin,
        })
    }

    /// The id, as logged and echoed.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records the client's address once it is resolved.
    pub(super) fn set_client_ip(&mut self, ip: IpAddr) {
        self.client_ip = Some(ip);
    }
}

const HEADER: &str = "x-request-id";

/// Gives each request its id and its log span, logs its outcome, and counts it in `/metrics`
/// by the route template the router matched (`/v1/members/{id}`), whatever the status, and
/// every request no route matched as `unmatched`: labels come only from the routes we define,
/// never from what a client puts in a path, so no request can add a metric series.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observe;

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint { inner }
    }
}

/// The endpoint [`Observe`] wraps around the application.
pub struct ObserveEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let request_id = request
            .headers()
            .get(HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|value| is_sane_id(value))
            .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
        let user_agent = request
            .headers()
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        request.extensions_mut().insert(RequestId {
            id: request_id.clone(),
            client_ip: None,
            user_agent,
        });
        let method = method_label(request.method());
        let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %request.uri().path());
        let started = Instant::now();
        let outcome = self.inner.call(request).instrument(span.clone()).await;
        let mut response = match outcome {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let status = response.status();
        let route = response
            .data::<PathPattern>()
            .map_or_else(|| UNMATCHED.to_owned(), |pattern| route_template(&pattern.0));
        metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.as_u16().to_string()).increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.clone())
            .record(elapsed);
        span.in_scope(|| {
            tracing::info!(
                status = status.as_u16(),
                route = %route,
                latency_ms = elapsed * 1e3,
                "request finished"
            )
        });
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(HEADER, value);
        }
        Ok(response)
    }
}

/// The label of every request no route matched (unknown paths, and requests refused before
/// routing such as an over-long body).
const UNMATCHED: &str = "unmatched";

fn is_sane_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())
}

/// The method as a label: the standard ones by name, any other (a client may invent methods)
/// as `OTHER`, so methods cannot add series either.
fn method_label(method: &Method) -> String {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(method) {
        method.to_string()
    } else {
        "OTHER".to_owned()
    }
}

/// The router's pattern as a template, every parameter (poem writes `:param0`) as `{id}`.
fn route_template(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| if segment.starts_with(':') { "{id}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}
