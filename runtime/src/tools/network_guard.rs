//! Which addresses a tool may not reach, and the resolver that enforces it on every connection.
//!
//! A tool URL is tenant input: without this fence, a tenant could make the runtime call the
//! cloud metadata service (169.254.169.254), the database, or anything else on the private
//! network it runs in. The check is made on the **resolved** addresses, inside the HTTP
//! client's own resolver, so the address checked is the address connected to: a name that
//! resolves to a public address when the tool is defined and to 127.0.0.1 at call time (DNS
//! rebinding) is still refused. An IP-literal URL never reaches a resolver, so the invoker
//! checks literals itself with [`check_literal`]. Redirects are not followed at all, so a
//! public tool cannot bounce the call to a private one.
//!
//! A name with several addresses is refused when **any** of them is refused: the client may
//! connect to any of them, and a name that mixes public and private addresses is suspect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The range a refused address falls in: the rule a tool call broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressRule {
    /// `0.0.0.0/8` ("this network", which Linux routes to the host itself) and `::`.
    Unspecified,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// RFC 6598 carrier-grade NAT: `100.64.0.0/10`.
    SharedAddressSpace,
    /// `169.254.0.0/16` (including the cloud metadata address 169.254.169.254) and `fe80::/10`.
    LinkLocal,
    /// IPv6 unique local addresses: `fc00::/7`.
    UniqueLocal,
    /// Deprecated IPv6 site-local addresses: `fec0::/10`.
    SiteLocal,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`, reserved for future use.
    Reserved,
}

impl AddressRule {
    /// The rule's stable snake_case name.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared_address_space",
            Self::LinkLocal => "link_local",
            Self::UniqueLocal => "unique_local",
            Self::SiteLocal => "site_local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        }
    }

    /// The rule in words, with its ranges, for the detail the model and operator read.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address (0.0.0.0/8, ::)",
            Self::Loopback => "a loopback address (127.0.0.0/8, ::1)",
            Self::Private => "a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
            Self::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            Self::LinkLocal => {
                "a link-local address (169.254.0.0/16 with the cloud metadata service, fe80::/10)"
            }
            Self::UniqueLocal => "a unique local address (fc00::/7)",
            Self::SiteLocal => "a site-local address (fec0::/10)",
            Self::Multicast => "a multicast address (224.0.0.0/4, ff00::/8)",
            Self::Broadcast => "the broadcast address (255.255.255.255)",
            Self::Reserved => "a reserved address (240.0.0.0/4)",
        }
    }
}

/// The rule `address` breaks, or `None` when a tool may call it.
///
/// IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by the IPv4 address inside.
pub fn classify_address(address: IpAddr) -> Option<AddressRule> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(address: Ipv4Addr) -> Option<AddressRule> {
    let [first, second, ..] = address.octets();
    let rule = if address.is_broadcast() {
        AddressRule::Broadcast
    } else if first == 0 {
        AddressRule::Unspecified
    } else if address.is_loopback() {
        AddressRule::Loopback
    } else if address.is_private() {
        AddressRule::Private
    } else if first == 100 && second & 0xc0 == 64 {
        AddressRule::SharedAddressSpace
    } else if address.is_link_local() {
        AddressRule::LinkLocal
    } else if address.is_multicast() {
        AddressRule::Multicast
    } else if first >= 240 {
        AddressRule::Reserved
    } else {
        return None;
    };
    Some(rule)
}

fn classify_v6(address: Ipv6Addr) -> Option<AddressRule> {
    if address.is_unspecified() {
        return Some(AddressRule::Unspecified);
    }
    if address.is_loopback() {
        return Some(AddressRule::Loopback);
    }
    if let Some(v4) = embedded_v4(address) {
        return classify_v4(v4);
    }
    let first = address.segments()[0];
    if first & 0xffc0 == 0xfe80 {
        Some(AddressRule::LinkLocal)
    } else if first & 0xffc0 == 0xfec0 {
        Some(AddressRule::SiteLocal)
    } else if first & 0xfe00 == 0xfc00 {
        Some(AddressRule::UniqueLocal)
    } else if first & 0xff00 == 0xff00 {
        Some(AddressRule::Multicast)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for, in the forms that reach one.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let low = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match address.segments() {
        // IPv4-mapped, IPv4-compatible (deprecated), SIIT-translated, NAT64 well-known prefix.
        [0, 0, 0, 0, 0, 0xffff, high, low_half]
        | [0, 0, 0, 0, 0, 0, high, low_half]
        | [0, 0, 0, 0, 0xffff, 0, high, low_half]
        | [0x64, 0xff9b, 0, 0, 0, 0, high, low_half] => Some(low(high, low_half)),
        // 6to4: 2002:aabb:ccdd::/48 is routed to aa.bb.cc.dd.
        [0x2002, high, low_half, ..] => Some(low(high, low_half)),
        _ => None,
    }
}

/// An address a tool may not reach.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{}", self.describe())]
pub(super) struct BlockedAddress {
    /// The host as the URL names it.
    pub(super) host: String,
    /// Whether the host is a name the address was resolved from (else an IP literal).
    pub(super) resolved: bool,
    /// The refused address.
    pub(super) address: IpAddr,
    /// The rule it breaks.
    pub(super) rule: AddressRule,
}

impl BlockedAddress {
    fn describe(&self) -> String {
        if self.resolved {
            format!(
                "{} resolves to {}, {}",
                self.host,
                self.address,
                self.rule.describe()
            )
        } else {
            format!("the address {} is {}", self.address, self.rule.describe())
        }
    }
}

/// Refuses a URL whose host is an IP literal in a refused range (literals skip the resolver).
pub(super) fn check_literal(url: &Url) -> Result<(), BlockedAddress> {
    // The URL parser writes every IPv4 spelling of an http(s) host (`2130706433`, `0x7f.1`)
    // as a dotted quad, and an IPv6 host in brackets.
    let host = url.host_str().unwrap_or_default();
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse() {
        Ok(address) => check(host, address, false),
        // A name: the resolver's to check.
        Err(_) => Ok(()),
    }
}

fn check(host: &str, address: IpAddr, resolved: bool) -> Result<(), BlockedAddress> {
    match classify_address(address) {
        Some(rule) => Err(BlockedAddress {
            host: host.to_owned(),
            resolved,
            address,
            rule,
        }),
        None => Ok(()),
    }
}

/// The HTTP client's resolver when private networks are refused: resolves with the system's
/// resolver (`getaddrinfo`, through tokio) and fails the connection with a [`BlockedAddress`]
/// when any address is refused.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts the URL's port in.
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &addresses {
                check(&host, address.ip(), true)?;
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Option<AddressRule> {
        classify_address(text.parse().expect("a test address"))
    }

    #[test]
    fn loopback_is_refused_in_every_spelling() {
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert_eq!(rule(text), Some(AddressRule::Loopback), "{text}");
        }
    }

    #[test]
    fn rfc1918_ranges_are_private() {
        for text in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "::ffff:10.1.2.3",
        ] {
            assert_eq!(rule(text), Some(AddressRule::Private), "{text}");
        }
        assert_eq!(rule("172.32.0.1"), None);
        assert_eq!(rule("172.15.255.255"), None);
    }

    #[test]
    fn link_local_includes_cloud_metadata() {
        for text in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(rule(text), Some(AddressRule::LinkLocal), "{text}");
        }
    }

    #[test]
    fn carrier_grade_nat_is_refused_and_its_neighbours_are_not() {
        assert_eq!(rule("100.64.0.1"), Some(AddressRule::SharedAddressSpace));
        assert_eq!(rule("100.127.255.255"), Some(AddressRule::SharedAddressSpace));
        assert_eq!(rule("100.63.255.255"), None);
        assert_eq!(rule("100.128.0.0"), None);
    }

    #[test]
    fn ipv6_local_ranges_are_refused() {
        assert_eq!(rule("fc00::1"), Some(AddressRule::UniqueLocal));
        assert_eq!(rule("fd12:3456::1"), Some(AddressRule::UniqueLocal));
        assert_eq!(rule("fec0::1"), Some(AddressRule::SiteLocal));
        assert_eq!(rule("ff02::1"), Some(AddressRule::Multicast));
    }

    #[test]
    fn unspecified_multicast_broadcast_and_reserved_are_refused() {
        assert_eq!(rule("0.0.0.0"), Some(AddressRule::Unspecified));
        assert_eq!(rule("0.1.2.3"), Some(AddressRule::Unspecified));
        assert_eq!(rule("::"), Some(AddressRule::Unspecified));
        assert_eq!(rule("::ffff:0.0.0.0"), Some(AddressRule::Unspecified));
        assert_eq!(rule("224.0.0.1"), Some(AddressRule::Multicast));
        assert_eq!(rule("239.255.255.250"), Some(AddressRule::Multicast));
        assert_eq!(rule("255.255.255.255"), Some(AddressRule::Broadcast));
        assert_eq!(rule("240.0.0.1"), Some(AddressRule::Reserved));
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2001:db8::1",
        ] {
            assert_eq!(rule(text), None, "{text}");
        }
    }

    #[test]
    fn literals_in_every_url_spelling_are_checked() {
        for text in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            let url = Url::parse(text).expect("a test URL");
            assert!(check_literal(&url).is_err(), "{text}");
        }
        let public = Url::parse("https://8.8.8.8/").expect("a test URL");
        assert_eq!(check_literal(&public), Ok(()));
        let named = Url::parse("https://localhost/").expect("a test URL");
        assert_eq!(check_literal(&named), Ok(()), "names are the resolver's to check");
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        let name: Name = "localhost".parse().expect("a name");
        let error = match GuardedResolver.resolve(name).await {
            Ok(_) => panic!("localhost was resolved"),
            Err(error) => error,
        };
        let blocked = error.downcast_ref::<BlockedAddress>().expect("a BlockedAddress");
        assert_eq!(blocked.rule, AddressRule::Loopback);
        assert_eq!(blocked.host, "localhost");
    }
}
