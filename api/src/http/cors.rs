//! CORS for browser apps on other origins, by poem's own middleware: which methods and headers
//! a page may use, which answer headers it may read, and for how long a browser may reuse a
//! preflight.

use std::sync::Arc;

use poem::http::header::{self, HeaderValue};
use poem::http::{HeaderMap, Method};
use poem::middleware::{Cors, CorsEndpoint};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::BrowserOrigins;

/// Every method a route uses, and `OPTIONS` for preflights.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Request headers the API reads beyond the CORS-safelisted ones.
const REQUEST_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "last-event-id",
    "x-request-id",
];

/// Answer headers a client needs to read: where a created resource is, when to retry (429,
/// 503), and the request id to quote in a report. Rate-limit headers go here when the API
/// sends any.
const EXPOSED_HEADERS: [&str; 3] = ["location", "retry-after", "x-request-id"];

/// Seconds a browser may reuse a preflight's answer (Chromium caps it at 7200): a page does not
/// pay a second round trip for every call, and a change of this list reaches browsers soon.
const PREFLIGHT_MAX_AGE_SECONDS: i32 = 600;

/// Answers browsers on the allowed origins ([`BrowserOrigins`]) with poem's [`Cors`]: preflights
/// are answered here, before any route (so without authentication and outside every rate
/// limit), and every other answer to such a page carries `Access-Control-Allow-Origin` and
/// `Access-Control-Expose-Headers`. Credentials are not allowed: tokens travel in
/// `Authorization`, never in cookies.
///
/// Any other request, including one from an origin not on the list, goes to the routes exactly
/// as if this layer did not exist: poem's `Cors` alone would refuse it with 403, but a page on
/// such an origin is kept from reading the answer by the browser already, and a
/// non-browser client that sends `Origin` must not be refused for it.
#[derive(Clone, Debug)]
pub struct BrowserCors {
    origins: BrowserOrigins,
}

impl BrowserCors {
    /// CORS for `origins`; [`BrowserOrigins::None`] sends no CORS header at all.
    pub fn new(origins: BrowserOrigins) -> Self {
        Self { origins }
    }

    fn cors(&self) -> Option<Cors> {
        let cors = Cors::new()
            .allow_methods(METHODS)
            .allow_headers(REQUEST_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .allow_credentials(false)
            .max_age(PREFLIGHT_MAX_AGE_SECONDS);
        match &self.origins {
            BrowserOrigins::None => None,
            // No origin listed: poem's Cors allows every origin (echoing it back, with
            // `Vary: Origin`).
            BrowserOrigins::Any => Some(cors),
            BrowserOrigins::Listed(origins) => Some(cors.allow_origins(origins.iter().map(String::as_str))),
        }
    }
}

impl<E: Endpoint> Middleware<E> for BrowserCors {
    type Output = BrowserCorsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        let inner = Arc::new(inner);
        BrowserCorsEndpoint {
            cors: self.cors().map(|cors| cors.transform(Arc::clone(&inner))),
            inner,
            origins: self.origins.clone(),
        }
    }
}

/// The endpoint [`BrowserCors`] wraps around the application.
pub struct BrowserCorsEndpoint<E> {
    inner: Arc<E>,
    /// The same routes behind poem's Cors; `None` when no origin is allowed.
    cors: Option<CorsEndpoint<Arc<E>>>,
    origins: BrowserOrigins,
}

impl<E: Endpoint> Endpoint for BrowserCorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Self::Output> {
        let Some(cors) = &self.cors else {
            return self.inner.call(request).await.map(IntoResponse::into_response);
        };
        let allowed = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|origin| origin.to_str().ok())
            .is_some_and(|origin| self.origins.allows(origin));
        let mut response = if allowed {
            cors.call(request).await?
        } else {
            self.inner.call(request).await?.into_response()
        };
        vary_by_origin(response.headers_mut());
        Ok(response)
    }
}

/// With CORS on, an answer depends on the request's `Origin` (with or without the allow
/// headers), so a shared cache must not hand one origin's answer to another. poem adds
/// `Vary: Origin` only to answers for origins it did not match exactly.
fn vary_by_origin(headers: &mut HeaderMap) {
    let already = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("origin") || name.trim() == "*");
    if !already {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
