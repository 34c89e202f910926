//! WebSocket upgrades from pages on other sites. Browsers apply no CORS to WebSockets: a page on
//! any site may open one to us, and the browser tells us only which page it is, in `Origin`.
//! Without this check a page on another site could open streams in a user's name.

use poem::http::StatusCode;
use poem::http::header::{self, HeaderMap};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::catch_all::problem_response;
use super::{BrowserOrigins, ErrorCode, Problem};

/// Refuses, with 403 problem+json `origin_not_allowed`, every WebSocket upgrade whose `Origin`
/// is present and neither allowed ([`BrowserOrigins`]) nor the API's own (same host as the
/// request's `Host`, as for a page served through the same address). Upgrades without
/// `Origin` come from programs, not pages, and pass. Applied to the whole application, so
/// every stream route is covered without doing anything itself.
#[derive(Clone, Debug)]
pub struct CheckUpgradeOrigin {
    origins: BrowserOrigins,
}

impl CheckUpgradeOrigin {
    /// Allowing upgrades from `origins` (and from the API's own origin).
    pub fn new(origins: BrowserOrigins) -> Self {
        Self { origins }
    }

    /// The refusal of the request with these headers, if it is a WebSocket upgrade from a page
    /// on an origin that is not allowed.
    pub fn refusal(&self, headers: &HeaderMap) -> Option<Problem> {
        if !is_websocket_upgrade(headers) {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        let origin = origin.to_str().unwrap_or_default();
        if self.origins.allows(origin) || is_same_host(origin, headers) {
            return None;
        }
        Some(Problem::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OriginNotAllowed,
            format!("WebSocket connections from pages on {origin:?} are not allowed (AGENTRY_CORS_ORIGINS)"),
        ))
    }
}

/// `Upgrade: websocket` (the token is case-insensitive, and may share the header with others).
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
}

/// Whether the page's origin names the host (and port) the request was sent to: a page served
/// by the API's own address. The scheme is not compared, since TLS may end at a proxy.
fn is_same_host(origin: &str, headers: &HeaderMap) -> bool {
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

impl<E: Endpoint> Middleware<E> for CheckUpgradeOrigin {
    type Output = CheckUpgradeOriginEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CheckUpgradeOriginEndpoint {
            inner,
            check: self.clone(),
        }
    }
}

/// The endpoint [`CheckUpgradeOrigin`] wraps around the application.
pub struct CheckUpgradeOriginEndpoint<E> {
    inner: E,
    check: CheckUpgradeOrigin,
}

impl<E: Endpoint> Endpoint for CheckUpgradeOriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Self::Output> {
        if let Some(problem) = self.check.refusal(request.headers()) {
            return Ok(problem_response(problem));
        }
        self.inner.call(request).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use poem::http::HeaderMap;
    use poem::http::header::{HOST, ORIGIN, UPGRADE};

    use super::CheckUpgradeOrigin;
    use crate::http::BrowserOrigins;

    fn headers(pairs: &[(poem::http::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), value.parse().unwrap()))
            .collect()
    }

    fn listed() -> CheckUpgradeOrigin {
        CheckUpgradeOrigin::new(BrowserOrigins::Listed(vec!["https://app.example".to_owned()]))
    }

    #[test]
    fn only_upgrades_from_foreign_pages_are_refused() {
        let check = listed();
        let foreign = headers(&[
            (UPGRADE, "WebSocket"),
            (ORIGIN, "https://evil.example"),
            (HOST, "api.example"),
        ]);
        assert!(check.refusal(&foreign).is_some());
        let allowed = headers(&[
            (UPGRADE, "websocket"),
            (ORIGIN, "https://app.example"),
            (HOST, "api.example"),
        ]);
        assert!(check.refusal(&allowed).is_none());
        let own = headers(&[
            (UPGRADE, "websocket"),
            (ORIGIN, "https://api.example"),
            (HOST, "api.example"),
        ]);
        assert!(check.refusal(&own).is_none());
        let program = headers(&[(UPGRADE, "websocket"), (HOST, "api.example")]);
        assert!(check.refusal(&program).is_none());
        let plain = headers(&[(ORIGIN, "https://evil.example"), (HOST, "api.example")]);
        assert!(check.refusal(&plain).is_none());
    }

    #[test]
    fn with_nothing_listed_only_the_apis_own_pages_may_upgrade() {
        let check = CheckUpgradeOrigin::new(BrowserOrigins::None);
        let foreign = headers(&[
            (UPGRADE, "websocket"),
            (ORIGIN, "http://localhost:3000"),
            (HOST, "127.0.0.1:8080"),
        ]);
        assert!(check.refusal(&foreign).is_some());
        let own = headers(&[
            (UPGRADE, "websocket"),
            (ORIGIN, "http://127.0.0.1:8080"),
            (HOST, "127.0.0.1:8080"),
        ]);
        assert!(check.refusal(&own).is_none());
    }
}
