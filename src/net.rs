//! Addresses: CIDR ranges, the client address behind trusted proxies, and the
//! IP range (prefix) a click is grouped under for fraud counting.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::{IpNet, Ipv4Net};

/// An address range such as `10.0.0.0/8`; a bare address is a /32 or /128.
/// Host bits are cleared, and an IPv4-mapped IPv6 range is its IPv4 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

#[derive(Debug, thiserror::Error)]
#[error("not a CIDR range or an address: {0:?}")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(s.parse::<IpAddr>().map_err(|_| CidrError(s.into()))?),
        };
        Ok(Cidr::from_net(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Cidr {
    /// The range of `prefix` bits around `addr`; a prefix past the family's
    /// width means the address itself.
    pub fn new(addr: IpAddr, prefix: u8) -> Cidr {
        let net = IpNet::from(addr);
        let prefix = prefix.min(net.max_prefix_len());
        Cidr::from_net(IpNet::new(addr, prefix).unwrap_or(net))
    }

    fn from_net(net: IpNet) -> Cidr {
        let net = match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
                .addr()
                .to_ipv4_mapped()
                .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
                .map_or(net, IpNet::V4),
            net => net,
        };
        Cidr(net.trunc())
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&canonical(addr))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The range a click's address is counted under by the fraud detector.
pub fn ip_range(addr: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> Cidr {
    let addr = canonical(addr);
    let prefix = if addr.is_ipv4() {
        ipv4_prefix
    } else {
        ipv6_prefix
    };
    Cidr::new(addr, prefix)
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in
/// which case the rightmost `X-Forwarded-For` entry that is not itself trusted.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last_trusted = peer;
    for entry in header.rsplit(',') {
        match parse_forwarded_entry(entry) {
            Some(ip) if is_trusted(ip) => last_trusted = ip,
            Some(ip) => return ip,
            // A garbled entry: nothing left of it can be believed.
            None => return last_trusted,
        }
    }
    last_trusted
}

fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // "[2001:db8::1]:443" or "203.0.113.7:5000"
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_contains() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        let single: Cidr = "192.0.2.1".parse().unwrap();
        assert!(single.contains(ip("192.0.2.1")));
        assert!(!single.contains(ip("192.0.2.2")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn cidr_edges() {
        let all_v4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all_v4.contains(ip("203.0.113.7")));
        assert!(all_v4.contains(ip("::ffff:203.0.113.7")));
        assert!(!all_v4.contains(ip("2001:db8::1")));
        let all_v6: Cidr = "::/0".parse().unwrap();
        assert!(all_v6.contains(ip("2001:db8::1")));
        assert!(!all_v6.contains(ip("203.0.113.7")));

        let host: Cidr = "192.0.2.9/32".parse().unwrap();
        assert_eq!(host, "192.0.2.9".parse().unwrap());
        assert!(host.contains(ip("192.0.2.9")) && !host.contains(ip("192.0.2.8")));
        let host6: Cidr = "2001:db8::1/128".parse().unwrap();
        assert_eq!(host6, "2001:db8::1".parse().unwrap());
        assert!(host6.contains(ip("2001:db8::1")) && !host6.contains(ip("2001:db8::2")));

        let v6: Cidr = " 2001:db8:abcd::7/32 ".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        // A mapped range is the IPv4 range it maps.
        let mapped: Cidr = "::ffff:10.1.2.3/112".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.1.0.0/16");
        assert!(mapped.contains(ip("10.1.9.9")));

        assert!("2001:db8::/129".parse::<Cidr>().is_err());
        assert!("10.0.0.0/".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert_eq!(
            "10.0.0.0/x".parse::<Cidr>().unwrap_err().to_string(),
            "not a CIDR range or an address: \"10.0.0.0/x\""
        );
        // Prefix lengths past the family's width clamp to the address itself.
        assert_eq!(Cidr::new(ip("192.0.2.9"), 40).to_string(), "192.0.2.9/32");
        assert_eq!(Cidr::new(ip("192.0.2.9"), 0).to_string(), "0.0.0.0/0");
    }

    #[test]
    fn ranges_group_by_prefix() {
        assert_eq!(
            ip_range(ip("203.0.113.77"), 24, 48).to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            ip_range(ip("2001:db8:1:2:3::1"), 24, 48).to_string(),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        // Untrusted peer: header ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), Some("203.0.113.7"), &trusted),
            ip("198.51.100.1")
        );
        // Trusted peer: rightmost untrusted entry wins, spoofed left entries ignored.
        assert_eq!(
            client_ip(
                ip("10.0.0.5"),
                Some("1.2.3.4, 203.0.113.7, 10.0.0.9"),
                &trusted
            ),
            ip("203.0.113.7")
        );
        // Everything trusted: the leftmost trusted address.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("10.0.0.7"), &trusted),
            ip("10.0.0.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("garbage, 10.0.0.7"), &trusted),
            ip("10.0.0.7")
        );
    }
}
