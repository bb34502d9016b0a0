//! A visitor's headers as the redirect path takes them: any number of
//! `X-Forwarded-For` lines of any bytes, a user agent and a referrer, behind
//! trusted proxies or not, through the copy a queued click keeps and enrichment.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use relurl::{
    clicks::enrich::{GeoIp, RawClick, enrich},
    net::Cidr,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut lines = rest.split(|&b| b == b'\n');
    if let Some(agent) = lines.next().and_then(|l| HeaderValue::from_bytes(l).ok()) {
        headers.insert(header::USER_AGENT, agent.clone());
        headers.insert(header::REFERER, agent);
    }
    for line in lines.filter_map(|l| HeaderValue::from_bytes(l).ok()) {
        headers.append("x-forwarded-for", line);
    }
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, selector));
    let trusted: Vec<Cidr> = if selector % 2 == 0 {
        vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    } else {
        Vec::new()
    };
    let raw = RawClick::from_headers(chrono::Utc::now(), peer, &headers);
    assert!(raw.user_agent.len() <= 512 && raw.referrer.len() <= 2048);
    let click = enrich("fuzz", &raw, &trusted, &GeoIp::built_in());
    if trusted.is_empty() {
        assert_eq!(click.ip, peer, "an untrusted peer's header must be ignored");
    }
});
