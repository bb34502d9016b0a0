//! Addresses: CIDR ranges, the client address behind trusted proxies, and the
//! IP range (prefix) a click is grouped under for fraud counting.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// An address range such as `10.0.0.0/8`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("not a CIDR range")]
pub struct CidrError;

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| CidrError)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| CidrError)?,
            None => max,
        };
        if prefix > max {
            return Err(CidrError);
        }
        Ok(Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Cidr {
        Cidr {
            network: mask(addr, prefix),
            prefix,
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match canonical(addr) {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
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
