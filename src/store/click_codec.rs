//! A compact binary form of a stored click, for both backends: clicks are
//! the largest table by far, and JSON (field names, quoted timestamps) was about
//! four times the size, paid for in journal writes on every flush.
//!
//! Layout (version 1): id (16) · at, unix seconds (i64 BE) and nanos (u32 BE) · ip (tag 4|6 + bytes)
//! · is_bot (1) · then length-prefixed strings: code, user_agent, referrer,
//! device, browser, os · then optional strings (tag 0|1): referrer_host,
//! country, region, city.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Click, Location};

const VERSION: u8 = 1;

pub fn encode(click: &Click) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + click.user_agent.len() + click.referrer.len());
    out.push(VERSION);
    out.extend_from_slice(click.id.as_bytes());
    out.extend_from_slice(&click.at.timestamp().to_be_bytes());
    out.extend_from_slice(&click.at.timestamp_subsec_nanos().to_be_bytes());
    match click.ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.push(u8::from(click.is_bot));
    for s in [
        &click.code,
        &click.user_agent,
        &click.referrer,
        &click.device,
        &click.browser,
        &click.os,
    ] {
        put_str(&mut out, s);
    }
    for s in [
        &click.referrer_host,
        &click.location.country,
        &click.location.region,
        &click.location.city,
    ] {
        match s {
            Some(s) => {
                out.push(1);
                put_str(&mut out, s);
            }
            None => out.push(0),
        }
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads what [`encode`] wrote; `None` for anything else (a corrupt record).
pub fn decode(bytes: &[u8]) -> Option<Click> {
    let mut r = Reader(bytes);
    if r.take(1)?[0] != VERSION {
        return None;
    }
    let id = Uuid::from_slice(r.take(16)?).ok()?;
    let secs = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let nanos = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    let at = DateTime::<Utc>::from_timestamp(secs, nanos)?;
    let ip = match r.take(1)?[0] {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(r.take(4)?).ok()?)),
        6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16)?).ok()?)),
        _ => return None,
    };
    let is_bot = r.take(1)?[0] != 0;
    let code = r.string()?;
    let user_agent = r.string()?;
    let referrer = r.string()?;
    let device = r.string()?;
    let browser = r.string()?;
    let os = r.string()?;
    let referrer_host = r.optional()?;
    let location = Location {
        country: r.optional()?,
        region: r.optional()?,
        city: r.optional()?,
    };
    r.0.is_empty().then_some(Click {
        id,
        code,
        at,
        ip,
        user_agent,
        referrer,
        referrer_host,
        location,
        device,
        browser,
        os,
        is_bot,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn optional(&mut self) -> Option<Option<String>> {
        match self.take(1)?[0] {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(ip: &str) -> Click {
        Click {
            id: Uuid::now_v7(),
            code: "abc".into(),
            at: DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(),
            ip: ip.parse().unwrap(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".into(),
            referrer: "https://t.co/x".into(),
            referrer_host: Some("t.co".into()),
            location: Location {
                country: Some("GB".into()),
                region: None,
                city: Some("London".into()),
            },
            device: "desktop".into(),
            browser: "Firefox".into(),
            os: "Linux".into(),
            is_bot: false,
        }
    }

    #[test]
    fn round_trips_and_is_smaller_than_json() {
        for ip in ["203.0.113.7", "2001:db8::1"] {
            let c = click(ip);
            let bytes = encode(&c);
            assert_eq!(decode(&bytes), Some(c.clone()));
            // Field names and a quoted timestamp are what JSON adds.
            assert!(bytes.len() + 100 < serde_json::to_vec(&c).unwrap().len());
        }
    }

    #[test]
    fn corrupt_records_are_refused_not_panicked_on() {
        let bytes = encode(&click("203.0.113.7"));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "prefix of {cut} bytes");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), None);
        let mut bad_version = bytes;
        bad_version[0] = 9;
        assert_eq!(decode(&bad_version), None);
    }
}
