//! `[server]`: where the HTTP server listens, the URL it answers as, which
//! peers it believes about client addresses, and the limits that keep a hostile
//! client from holding connections or memory (timeouts, caps, sizes).

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

use super::{Errors, HOUR, MILLI};
use crate::net::Cidr;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub public_base_url: String,
    pub trusted_proxies: Vec<String>,
    pub max_body_bytes: u64,
    pub max_connections: u32,
    pub header_read_timeout: String,
    pub idle_timeout: String,
    pub body_read_timeout: String,
    pub max_header_bytes: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_base_url: "http://127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 65536,
            max_connections: 10_000,
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            body_read_timeout: "30s".into(),
            max_header_bytes: 16_384,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_base_url: String,
    pub trusted_proxies: Vec<Cidr>,
    pub max_body_bytes: usize,
    /// Open connections at most; past it a new connection is closed at once.
    pub max_connections: usize,
    /// A request head (and, on HTTP/1, the next one on a kept-alive
    /// connection) must arrive within this.
    pub header_read_timeout: Duration,
    /// A connection with no bytes read or written for this long is closed.
    pub idle_timeout: Duration,
    /// A request body must arrive within this.
    pub body_read_timeout: Duration,
    /// Request line target plus header lines, at most (431 / 414 past it).
    pub max_header_bytes: usize,
}

impl RawServer {
    pub(super) fn validate(self, errors: &mut Errors) -> ServerConfig {
        let listen = errors.parse(
            "server.listen",
            &self.listen,
            "an address like 127.0.0.1:8080",
        );
        let public_base_url = self.public_base_url.trim_end_matches('/').to_string();
        errors.check(
            public_base_url.starts_with("http://") || public_base_url.starts_with("https://"),
            "server.public_base_url",
            format!("an http(s) URL, got {:?}", self.public_base_url),
        );
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, cidr)| {
                errors.parse(
                    &format!("server.trusted_proxies[{i}]"),
                    cidr,
                    "a CIDR like 10.0.0.0/8 or an address",
                )
            })
            .collect();
        errors.check(
            (1..=1 << 30).contains(&self.max_body_bytes),
            "server.max_body_bytes",
            "a size between 1 and 1073741824",
        );
        errors.check(
            (1..=1_000_000).contains(&self.max_connections),
            "server.max_connections",
            "a count between 1 and 1000000",
        );
        errors.check(
            (1024..=1 << 20).contains(&self.max_header_bytes),
            "server.max_header_bytes",
            "a size between 1024 and 1048576",
        );
        let header_read_timeout = errors.duration(
            "server.header_read_timeout",
            &self.header_read_timeout,
            MILLI..=HOUR,
        );
        let idle_timeout = errors.duration("server.idle_timeout", &self.idle_timeout, MILLI..=HOUR);
        let body_read_timeout = errors.duration(
            "server.body_read_timeout",
            &self.body_read_timeout,
            MILLI..=HOUR,
        );
        ServerConfig {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            public_base_url,
            trusted_proxies,
            max_body_bytes: self.max_body_bytes as usize,
            max_connections: self.max_connections as usize,
            header_read_timeout: header_read_timeout.unwrap_or(Duration::from_secs(10)),
            idle_timeout: idle_timeout.unwrap_or(Duration::from_secs(60)),
            body_read_timeout: body_read_timeout.unwrap_or(Duration::from_secs(30)),
            max_header_bytes: self.max_header_bytes as usize,
        }
    }
}
