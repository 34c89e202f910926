use std::time::Instant;

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::Instrument;
use uuid::Uuid;

/// The id of the request being served: taken from a sane `X-Request-Id` or made up, logged on
/// every line of the request, echoed in the response, and stored in the metadata of every event
/// the request writes.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id as command metadata takes it.
    pub fn for_events(&self) -> Option<String> {
        Some(self.0.clone())
    }
}

const HEADER: &str = "x-request-id";

/// Gives each request its id and its log span, logs its outcome, and counts it in `/metrics`
/// by route template (ids folded to `{id}`, unknown routes to `unmatched`, so labels stay few).
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
        request.extensions_mut().insert(RequestId(request_id.clone()));
        let method = request.method().to_string();
        let route = route_label(request.uri().path());
        let span = tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
        let started = Instant::now();
        let outcome = self.inner.call(request).instrument(span.clone()).await;
        let mut response = match outcome {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let status = response.status();
        let route = if is_unmatched(status, &route) {
            "unmatched".to_owned()
        } else {
            route
        };
        metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.as_u16().to_string()).increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
            .record(elapsed);
        span.in_scope(|| {
            tracing::info!(
                status = status.as_u16(),
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

/// A 404 or 405 on a path without ids is an unknown route: one label for all of them, so a
/// scanner cannot create a metric series per path it tries. (A 404 on a templated path is a
/// known route answering "no such resource" and keeps its label.)
fn is_unmatched(status: StatusCode, route: &str) -> bool {
    (status == StatusCode::NOT_FOUND && !route.contains("{id}")) || status == StatusCode::METHOD_NOT_ALLOWED
}

fn is_sane_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())
}

/// The route template of `path`: segments that are ids (UUIDs or numbers) become `{id}`.
pub fn route_label(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let is_id = Uuid::parse_str(segment).is_ok()
                || (!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()));
            if is_id { "{id}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}
