//! The client address a request is throttled by.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Who a request came from, as far as limits are concerned: the peer's IP address (or, behind
/// a configured proxy, the address it names). IPv6 addresses count by their /64 network, since
/// one host usually holds a whole /64 and could otherwise change address at every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The address limits key `ip` by (IPv4 as is, IPv6 cut to its /64, IPv4-mapped IPv6 as
    /// IPv4).
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }

    /// The address as keyed.
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_of_one_network_are_one_client_and_mapped_ipv4_is_ipv4() {
        let a = ClientAddress::new("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddress::new("2001:db8:1:2:bbbb::9".parse().unwrap());
        let other = ClientAddress::new("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientAddress::new("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(mapped.to_string(), "10.1.2.3");
    }
}
