//! Addresses: CIDR ranges, the client address behind trusted proxies, the
//! IP range (prefix) a click is grouped under for fraud counting, and which
//! addresses are not public (webhooks may not reach them).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

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
/// [`client_ip`] of `X-Forwarded-For` bytes (every header line, joined with
/// `,`), read lossily: an invalid entry is garbled and stops the walk, the
/// entries after it still count.
pub fn client_ip_of_bytes(peer: IpAddr, forwarded_for: &[u8], trusted: &[Cidr]) -> IpAddr {
    let forwarded = String::from_utf8_lossy(forwarded_for);
    let forwarded = (!forwarded.is_empty()).then_some(&*forwarded);
    client_ip(peer, forwarded, trusted)
}

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

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(first: u16, second: u16, third: u16, fourth: u16, prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(first, second, third, fourth, 0, 0, 0, 0),
        prefix,
    )
}

/// IPv4 ranges that are not globally reachable: the IANA IPv4 Special-Purpose
/// Address Registry (as of 2025), plus multicast.
const NOT_PUBLIC_V4: [Ipv4Net; 15] = [
    v4(0, 0, 0, 0, 8),       // "this network"
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // shared address space (CGNAT)
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local (cloud metadata)
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation
    v4(192, 88, 99, 0, 24),  // 6to4 relay anycast (deprecated)
    v4(192, 168, 0, 0, 16),  // private
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation
    v4(203, 0, 113, 0, 24),  // documentation
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, and the broadcast address
];

/// IPv6 ranges that are not globally reachable: the IANA IPv6 Special-Purpose
/// Address Registry (as of 2025), plus multicast and deprecated site-local.
/// Ranges that carry an IPv4 address we can read (mapped, compatible, NAT64
/// 64:ff9b::/96) are judged by that address instead, in [`is_forbidden`].
const NOT_PUBLIC_V6: [Ipv6Net; 12] = [
    v6(0x64, 0xff9b, 1, 0, 48), // local-use NAT64: a translator into private space
    v6(0x100, 0, 0, 0, 64),     // discard-only
    v6(0x100, 0, 0, 1, 64),     // dummy prefix
    v6(0x2001, 0, 0, 0, 23),    // IETF protocol assignments: Teredo 2001::/32, ORCHID, benchmarking
    v6(0x2001, 0xdb8, 0, 0, 32), // documentation
    v6(0x2002, 0, 0, 0, 16),    // 6to4: any IPv4 address behind a relay
    v6(0x3fff, 0, 0, 0, 20),    // documentation
    v6(0x5f00, 0, 0, 0, 16),    // SRv6 segment identifiers
    v6(0xfc00, 0, 0, 0, 7),     // unique local
    v6(0xfe80, 0, 0, 0, 10),    // link-local
    v6(0xfec0, 0, 0, 0, 10),    // site-local (deprecated)
    v6(0xff00, 0, 0, 0, 8),     // multicast
];

/// An address no webhook may reach unless private targets are allowed: one
/// that is not globally reachable, or an IPv6 address carrying such an IPv4 one.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => NOT_PUBLIC_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_forbidden(IpAddr::V4(v4)),
            None => NOT_PUBLIC_V6.iter().any(|net| net.contains(&v6)),
        },
    }
}

/// The IPv4 address inside an IPv4-mapped (::ffff:0:0/96), IPv4-compatible
/// (::/96, which also holds :: and ::1) or well-known NAT64 (64:ff9b::/96) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let carries_v4 =
        s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let [.., a, b, c, d] = v6.octets();
    carries_v4.then(|| Ipv4Addr::new(a, b, c, d))
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

    #[track_caller]
    fn forbidden(ips: &[&str]) {
        for s in ips {
            assert!(is_forbidden(ip(s)), "{s} should be forbidden");
        }
    }

    #[track_caller]
    fn allowed(ips: &[&str]) {
        for s in ips {
            assert!(!is_forbidden(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn ipv4_special_purpose_ranges_are_forbidden() {
        forbidden(&[
            "0.1.2.3",
            "10.255.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
        ]);
        allowed(&[
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "1.1.1.1",
        ]);
    }

    #[test]
    fn sixto4_is_forbidden() {
        // 2002:0808:0808:: would reach 8.8.8.8 through a relay; 2002:7f00:1:: 127.0.0.1.
        forbidden(&["2002::1", "2002:808:808::1", "2002:7f00:1::1"]);
        allowed(&["2003::1"]);
    }

    #[test]
    fn teredo_and_ietf_protocol_assignments_are_forbidden() {
        forbidden(&[
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff::1",
        ]);
        allowed(&["2001:200::1", "2001:4860:4860::8888"]);
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_by_their_ipv4_address() {
        forbidden(&[
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
        ]);
        allowed(&["::ffff:8.8.8.8"]);
        // IPv4-compatible (deprecated) too, which covers :: and ::1.
        forbidden(&["::", "::1", "::10.0.0.1"]);
        allowed(&["::8.8.8.8"]);
    }

    #[test]
    fn nat64_prefixes() {
        // Well-known prefix: the embedded address decides.
        forbidden(&["64:ff9b::a00:1", "64:ff9b::7f00:1"]);
        allowed(&["64:ff9b::808:808"]);
        // Local-use prefix: a site's own translator, never public.
        forbidden(&["64:ff9b:1::808:808", "64:ff9b:1:ffff::1"]);
        allowed(&["64:ff9b:2::1"]);
    }

    #[test]
    fn ipv6_documentation_ranges_are_forbidden() {
        forbidden(&["3fff::1", "3fff:fff:ffff::1", "2001:db8::1"]);
        allowed(&["3fff:1000::1"]);
    }

    #[test]
    fn other_ipv6_special_purpose_ranges_are_forbidden() {
        forbidden(&[
            "100::1",
            "100:0:0:1::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ]);
        allowed(&["2606:4700::1111", "2a00:1450::1", "100:0:0:2::1"]);
    }
}
