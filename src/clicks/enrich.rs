//! Turning a raw click (socket address, headers) into a stored [`Click`]:
//! user agent → device/browser/os/bot, address → location, referrer → host.
//! Pure functions plus an optional MaxMind database; runs inside the shards.

use std::{net::IpAddr, path::Path};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    domain::{Click, Location},
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

/// A click as the redirect handler saw it: nothing parsed yet.
#[derive(Debug)]
pub struct RawClick {
    pub at: DateTime<Utc>,
    pub peer: IpAddr,
    pub user_agent: Option<http::HeaderValue>,
    pub referrer: Option<http::HeaderValue>,
    pub forwarded_for: Option<http::HeaderValue>,
}

fn header_text(value: Option<&http::HeaderValue>) -> String {
    value
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

pub fn enrich(code: &str, raw: &RawClick, trusted_proxies: &[Cidr], geo: &GeoIp) -> Click {
    let forwarded = raw.forwarded_for.as_ref().and_then(|v| v.to_str().ok());
    let ip = net::client_ip(raw.peer, forwarded, trusted_proxies);
    let user_agent = header_text(raw.user_agent.as_ref());
    let referrer = header_text(raw.referrer.as_ref());
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
