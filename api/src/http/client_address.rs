//! Which client a request comes from, for limits keyed by address.

use std::net::{IpAddr, Ipv4Addr};

use commands::identity::ClientAddress;
use poem::http::{HeaderMap, HeaderName};
use poem::{Endpoint, Middleware, Request, Result};

use super::RequestId;

/// Puts the request's [`ClientAddress`] into its data (`Data<&ClientAddress>`), and the whole
/// address into its [`RequestId`] (which events record): the TCP peer's address, or, when a
/// trusted proxy header is configured (`AGENTRY_TRUSTED_PROXY_HEADER`), the last address in
/// that header: the one the proxy in front of us saw. Addresses earlier in such a header are
/// whatever the client claimed, so they are never used.
#[derive(Clone, Debug)]
pub struct ResolveClient {
    trusted_header: Option<HeaderName>,
}

impl ResolveClient {
    /// Resolving by peer address, or by `trusted_header` when set.
    pub fn new(trusted_header: Option<HeaderName>) -> Self {
        Self { trusted_header }
    }

    /// The client's whole address.
    fn resolve(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> IpAddr {
        let from_proxy = self.trusted_header.as_ref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?;
            let last = value.to_str().ok()?.rsplit(',').next()?.trim();
            last.parse::<IpAddr>().ok()
        });
        // No IP at all (a Unix socket): every such request is one client.
        from_proxy.or(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl<E: Endpoint> Middleware<E> for ResolveClient {
    type Output = ResolveClientEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ResolveClientEndpoint {
            inner,
            resolver: self.clone(),
        }
    }
}

/// The endpoint [`ResolveClient`] wraps around the routes.
pub struct ResolveClientEndpoint<E> {
    inner: E,
    resolver: ResolveClient,
}

impl<E: Endpoint> Endpoint for ResolveClientEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let peer = request
            .remote_addr()
            .as_socket_addr()
            .map(std::net::SocketAddr::ip);
        let client = self.resolver.resolve(request.headers(), peer);
        if let Some(request_id) = request.extensions_mut().get_mut::<RequestId>() {
            request_id.set_client_ip(client);
        }
        request.extensions_mut().insert(ClientAddress::new(client));
        self.inner.call(request).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What the resolver sees of a request from 192.0.2.7 with this `X-Forwarded-For`.
    fn resolve(resolver: &ResolveClient, header: Option<&str>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert("x-forwarded-for", value.parse().unwrap());
        }
        ClientAddress::new(resolver.resolve(&headers, Some("192.0.2.7".parse().unwrap()))).to_string()
    }

    #[test]
    fn the_peer_counts_unless_a_trusted_header_names_the_last_hop() {
        let peer_only = ResolveClient::new(None);
        assert_eq!(resolve(&peer_only, Some("10.0.0.1")), "192.0.2.7");
        let behind_proxy = ResolveClient::new(Some(HeaderName::from_static("x-forwarded-for")));
        assert_eq!(
            resolve(&behind_proxy, Some("6.6.6.6, 203.0.113.9")),
            "203.0.113.9"
        );
        assert_eq!(resolve(&behind_proxy, Some("garbage")), "192.0.2.7");
        assert_eq!(resolve(&behind_proxy, None), "192.0.2.7");
    }
}
