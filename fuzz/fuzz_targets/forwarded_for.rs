//! `X-Forwarded-For` as any client may send it, behind trusted proxies or not.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use relurl::net::{Cidr, client_ip};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, header)) = data.split_first() else {
        return;
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, selector));
    let trusted: Vec<Cidr> = if selector % 2 == 0 {
        vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    } else {
        Vec::new()
    };
    let ip = client_ip(peer, Some(header), &trusted);
    if trusted.is_empty() {
        assert_eq!(ip, peer, "an untrusted peer's header must be ignored");
    }
});
