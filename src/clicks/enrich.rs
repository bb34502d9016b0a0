//! Turning a raw click (socket address, headers) into a stored [`Click`]:
//! user agent → device/browser/os/bot, address → location, referrer → host.
//! Pure functions plus an optional MaxMind database; runs inside the shards.

use std::{net::IpAddr, path::Path};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    domain::{Click, Location},
    metrics::events::ForwardedForIgnored,
    net::{self, Cidr},
};

/// Substrings (lowercase) of user agents that are automated clients.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "headlesschrome",
    "phantomjs",
    "facebookexternalhit",
    "embedly",
    "preview",
    "k6/",
    "oha/",
    "wrk",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub device: &'static str,
    pub browser: String,
    pub os: String,
    pub is_bot: bool,
}

/// Classifies a user agent: device is one of desktop, mobile, tablet, bot, other.
pub fn classify_agent(user_agent: &str) -> Agent {
    let lower = user_agent.to_ascii_lowercase();
    let marker_bot = user_agent.trim().is_empty() || BOT_MARKERS.iter().any(|m| lower.contains(m));
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let (category, name, os) = parsed
        .as_ref()
        .map_or(("UNKNOWN", "UNKNOWN", "UNKNOWN"), |r| {
            (r.category, r.name, r.os)
        });
    let is_bot = marker_bot || category == "crawler";
    let tablet =
        os == "iPad" || lower.contains("tablet") || (os == "Android" && !lower.contains("mobile"));
    let device = if is_bot {
        "bot"
    } else if tablet {
        "tablet"
    } else {
        match category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        }
    };
    let known = |v: &str| (v != "UNKNOWN").then(|| v.to_string());
    Agent {
        device,
        browser: known(name).unwrap_or_else(|| "Other".into()),
        os: known(os).unwrap_or_else(|| "Other".into()),
        is_bot,
    }
}

/// The host of a referrer URL, lowercased, without port or credentials.
pub fn referrer_host(referrer: &str) -> Option<String> {
    let (_, rest) = referrer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Where clicks come from: the built-in country table, or a MaxMind database.
pub struct GeoIp {
    mmdb: Option<maxminddb::Reader<Vec<u8>>>,
}

#[derive(Deserialize)]
struct MmdbRecord {
    country: Option<MmdbCountry>,
    subdivisions: Option<Vec<MmdbCountry>>,
    city: Option<MmdbCity>,
}

#[derive(Deserialize)]
struct MmdbCountry {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
struct MmdbCity {
    names: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open GeoIP database {path}: {reason}")]
pub struct GeoIpError {
    path: String,
    reason: String,
}

impl GeoIp {
    pub fn built_in() -> Self {
        Self { mmdb: None }
    }

    pub fn open(path: Option<&Path>) -> Result<Self, GeoIpError> {
        let Some(path) = path else {
            return Ok(Self::built_in());
        };
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoIpError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { mmdb: Some(reader) })
    }

    pub fn locate(&self, ip: IpAddr) -> Location {
        if let Some(reader) = &self.mmdb {
            let record = reader
                .lookup(ip)
                .ok()
                .and_then(|r| r.decode::<MmdbRecord>().ok().flatten());
            if let Some(record) = record {
                return Location {
                    country: record.country.and_then(|c| c.iso_code),
                    region: record
                        .subdivisions
                        .and_then(|s| s.into_iter().next())
                        .and_then(|s| s.iso_code),
                    city: record
                        .city
                        .and_then(|c| c.names)
                        .and_then(|mut n| n.remove("en")),
                };
            }
        }
        Location {
            country: iptocc::country_code(ip).map(str::to_string),
            ..Location::default()
        }
    }
}

/// Bytes of `User-Agent` kept with a click.
pub const MAX_USER_AGENT: usize = 512;
/// Bytes of `Referer` kept with a click.
pub const MAX_REFERRER: usize = 2048;
/// Bytes of `X-Forwarded-For` kept (its right end: the entries proxies added).
pub const MAX_FORWARDED_FOR: usize = 1024;

/// A click as the redirect handler saw it: nothing parsed yet. Header values
/// are owned, truncated copies: hyper's header values share the whole request
/// head buffer, which a queued click must not keep alive.
#[derive(Debug)]
pub struct RawClick {
    pub at: DateTime<Utc>,
    pub peer: IpAddr,
    /// Empty when absent.
    pub user_agent: Box<[u8]>,
    pub referrer: Box<[u8]>,
    /// Every `X-Forwarded-For` line, joined with `,`.
    pub forwarded_for: Box<[u8]>,
}

impl RawClick {
    pub fn from_headers(at: DateTime<Utc>, peer: IpAddr, headers: &http::HeaderMap) -> Self {
        let head = |name, max| {
            headers
                .get(name)
                .map_or_else(Box::default, |v| Box::from(utf8_prefix(v.as_bytes(), max)))
        };
        Self {
            at,
            peer,
            user_agent: head(http::header::USER_AGENT, MAX_USER_AGENT),
            referrer: head(http::header::REFERER, MAX_REFERRER),
            forwarded_for: forwarded_tail(
                headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(http::HeaderValue::as_bytes),
                MAX_FORWARDED_FOR,
            ),
        }
    }
}

/// At most `max` bytes from the start, not splitting a UTF-8 character.
fn utf8_prefix(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut cut = max;
    // Back over continuation bytes (at most three) to a character start.
    while cut > max.saturating_sub(3) && bytes.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    &bytes[..cut]
}

/// The lines joined with `,`, keeping at most `max` bytes from the right and
/// only whole entries: a cut entry (`3.0.113.7` of `203.0.113.7`) could read
/// as another address.
pub fn forwarded_tail<'a>(lines: impl Iterator<Item = &'a [u8]>, max: usize) -> Box<[u8]> {
    let mut out: Vec<u8> = Vec::new();
    let mut cut = false;
    for line in lines {
        if !out.is_empty() {
            out.push(b',');
        }
        let start = line.len().saturating_sub(max);
        if start > 0 {
            out.clear();
            cut = true;
        }
        out.extend_from_slice(&line[start..]);
        if out.len() > max {
            out.drain(..out.len() - max);
            cut = true;
        }
    }
    if cut {
        match out.iter().position(|&b| b == b',') {
            Some(comma) => drop(out.drain(..=comma)),
            None => out.clear(),
        }
    }
    out.into_boxed_slice()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback, private or link-local peer: likely a proxy in front of us.
fn is_internal(ip: IpAddr) -> bool {
    match net::canonical(ip) {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

pub fn enrich(code: &str, raw: &RawClick, trusted_proxies: &[Cidr], geo: &GeoIp) -> Click {
    if trusted_proxies.is_empty() && !raw.forwarded_for.is_empty() && is_internal(raw.peer) {
        ForwardedForIgnored { peer: raw.peer }.emit();
    }
    let ip = net::client_ip_of_bytes(raw.peer, &raw.forwarded_for, trusted_proxies);
    let user_agent = text(&raw.user_agent);
    let referrer = text(&raw.referrer);
    let agent = classify_agent(&user_agent);
    Click {
        id: Uuid::now_v7(),
        code: code.to_string(),
        at: raw.at,
        ip,
        referrer_host: referrer_host(&referrer),
        location: geo.locate(ip),
        device: agent.device.to_string(),
        browser: agent.browser,
        os: agent.os,
        is_bot: agent.is_bot,
        user_agent,
        referrer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    const ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    const ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    #[test]
    fn agents() {
        let a = classify_agent(ANDROID_PHONE);
        assert_eq!(
            (a.device, a.browser.as_str(), a.os.as_str(), a.is_bot),
            ("mobile", "Chrome", "Android", false)
        );
        let a = classify_agent(IPHONE);
        assert_eq!(
            (a.device, a.browser.as_str(), a.os.as_str()),
            ("mobile", "Safari", "iPhone")
        );
        assert_eq!(classify_agent(ANDROID_TABLET).device, "tablet");
        assert_eq!(classify_agent(IPAD).device, "tablet");
        let a = classify_agent(FIREFOX_LINUX);
        assert_eq!(
            (a.device, a.browser.as_str(), a.os.as_str()),
            ("desktop", "Firefox", "Linux")
        );
        let a = classify_agent(GOOGLEBOT);
        assert_eq!((a.device, a.is_bot), ("bot", true));
        assert!(classify_agent("curl/8.5.0").is_bot);
        assert!(classify_agent("").is_bot);
        assert_eq!(classify_agent("SomethingWeird/1.0").device, "other");
    }

    #[test]
    fn header_copies_are_truncated_on_character_boundaries() {
        assert_eq!(utf8_prefix(b"abc", 5), b"abc");
        assert_eq!(utf8_prefix("aé".as_bytes(), 2), b"a");
        assert_eq!(utf8_prefix("a✓".as_bytes(), 3), b"a");
        assert_eq!(utf8_prefix(&[0xff; 10], 4).len(), 4);
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::USER_AGENT, "u".repeat(5000).parse().unwrap());
        let raw = RawClick::from_headers(Utc::now(), "127.0.0.1".parse().unwrap(), &headers);
        assert_eq!(raw.user_agent.len(), MAX_USER_AGENT);
        assert!(raw.referrer.is_empty() && raw.forwarded_for.is_empty());
    }

    #[test]
    fn forwarded_for_keeps_whole_entries_from_the_right() {
        let tail = |lines: &[&str], max| {
            let kept = forwarded_tail(lines.iter().map(|l| l.as_bytes()), max);
            String::from_utf8(kept.into_vec()).unwrap()
        };
        assert_eq!(tail(&["1.1.1.1", "2.2.2.2"], 64), "1.1.1.1,2.2.2.2");
        assert_eq!(tail(&["1.1.1.1, 203.0.113.7"], 12), "");
        assert_eq!(tail(&["1.1.1.1", "203.0.113.7"], 14), "203.0.113.7");
        assert_eq!(tail(&["x".repeat(5000).as_str(), "9.9.9.9"], 20), "9.9.9.9");
        assert_eq!(tail(&[], 20), "");
    }

    #[test]
    fn garbage_forwarded_for_falls_back_to_the_last_trusted_hop() {
        let proxy: Cidr = "127.0.0.1".parse().unwrap();
        let raw = |xff: &[u8]| RawClick {
            at: Utc::now(),
            peer: "127.0.0.1".parse().unwrap(),
            user_agent: Box::default(),
            referrer: Box::default(),
            forwarded_for: xff.into(),
        };
        let geo = GeoIp::built_in();
        let ip = |xff: &[u8]| enrich("c", &raw(xff), &[proxy], &geo).ip.to_string();
        assert_eq!(ip(b"\xff\xfe, 203.0.113.7"), "203.0.113.7");
        assert_eq!(ip(b"203.0.113.7, \xff"), "127.0.0.1");
        assert_eq!(ip(b""), "127.0.0.1");
    }

    #[test]
    fn referrer_hosts() {
        assert_eq!(referrer_host("https://t.co/abc"), Some("t.co".into()));
        assert_eq!(
            referrer_host("https://user:pw@News.Example.com:8443/x?y"),
            Some("news.example.com".into())
        );
        assert_eq!(
            referrer_host("http://[2001:db8::1]:80/"),
            Some("2001:db8::1".into())
        );
        assert_eq!(referrer_host("not a url"), None);
        assert_eq!(referrer_host(""), None);
    }

    #[test]
    fn built_in_country_table() {
        let geo = GeoIp::built_in();
        // 8.8.8.8 is delegated to the US by ARIN.
        assert_eq!(
            geo.locate("8.8.8.8".parse().unwrap()).country.as_deref(),
            Some("US")
        );
        assert_eq!(geo.locate("127.0.0.1".parse().unwrap()).country, None);
    }
}
