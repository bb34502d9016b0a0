//! `[server]`: where the HTTP server listens, the URL it answers as, and which
//! peers it believes about client addresses.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Errors;
use crate::net::Cidr;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub public_base_url: String,
    pub trusted_proxies: Vec<String>,
    pub max_body_bytes: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_base_url: "http://127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 65536,
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
        ServerConfig {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            public_base_url,
            trusted_proxies,
            max_body_bytes: self.max_body_bytes as usize,
        }
    }
}
