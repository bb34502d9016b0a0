//! Configuration: the raw TOML/env shape (unknown keys refused), validated into
//! [`Config`] with every problem reported at once, each naming its key.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::net::Cidr;

/// The file read when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/relurl.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub auth: RawAuth,
    pub store: RawStore,
    pub redirect: RawRedirect,
    pub webhooks: RawWebhooks,
    pub fraud: RawFraud,
    pub enrich: RawEnrich,
    pub cluster: crate::cluster::config::RawCluster,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub public_base_url: String,
    pub trusted_proxies: Vec<String>,
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub admin_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub backend: String,
    pub path: String,
    pub scylla_nodes: Vec<String>,
    pub scylla_keyspace: String,
    pub scylla_replication_factor: u32,
    pub click_ttl: String,
    pub attempt_ttl: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedirect {
    pub shards: u32,
    pub default_status: u16,
    pub flush_interval_ms: u64,
    pub flush_max_batch: u32,
    pub durable_ack: bool,
    pub shard_queue_limit: u32,
    pub cache_capacity: u32,
    pub cache_ttl: String,
    pub negative_cache_ttl: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhooks {
    pub max_endpoints_per_account: u32,
    pub timeout_ms: u64,
    pub retry_schedule: Vec<String>,
    pub retry_jitter: f64,
    pub default_rate_limit_per_sec: u32,
    pub max_in_flight_per_endpoint: u32,
    pub disable_after_failed_deliveries: u32,
    pub allow_private_targets: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFraud {
    pub enabled: bool,
    pub window_secs: u64,
    pub threshold: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub max_tracked_keys: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEnrich {
    pub geoip_mmdb: String,
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

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: "embedded".into(),
            path: "./data".into(),
            scylla_nodes: vec!["127.0.0.1:9042".into()],
            scylla_keyspace: "relurl".into(),
            scylla_replication_factor: 1,
            click_ttl: "90d".into(),
            attempt_ttl: "30d".into(),
        }
    }
}

impl Default for RawRedirect {
    fn default() -> Self {
        Self {
            shards: 0,
            default_status: 302,
            flush_interval_ms: 5,
            flush_max_batch: 1024,
            durable_ack: false,
            shard_queue_limit: 65536,
            cache_capacity: 1_000_000,
            cache_ttl: "30s".into(),
            negative_cache_ttl: "5s".into(),
        }
    }
}

impl Default for RawWebhooks {
    fn default() -> Self {
        Self {
            max_endpoints_per_account: 5,
            timeout_ms: 5000,
            retry_schedule: ["1m", "5m", "15m", "30m", "1h"].map(String::from).to_vec(),
            retry_jitter: 0.1,
            default_rate_limit_per_sec: 50,
            max_in_flight_per_endpoint: 16,
            disable_after_failed_deliveries: 20,
            allow_private_targets: false,
        }
    }
}

impl Default for RawFraud {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: 10,
            threshold: 200,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            max_tracked_keys: 1_000_000,
        }
    }
}

/// Validated configuration: every value typed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub redirect: RedirectConfig,
    pub webhooks: WebhooksConfig,
    pub fraud: FraudConfig,
    pub enrich: EnrichConfig,
    pub cluster: crate::cluster::config::ClusterConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_base_url: String,
    pub trusted_proxies: Vec<Cidr>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Empty: generated at first start and persisted in the store.
    pub admin_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Embedded,
    Scylla,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub path: PathBuf,
    pub scylla_nodes: Vec<String>,
    pub scylla_keyspace: String,
    pub scylla_replication_factor: u32,
    /// How long clicks are kept (scylla backend; the embedded one keeps them).
    pub click_ttl: Duration,
    /// How long delivery attempts are kept (scylla backend; the embedded one keeps them).
    pub attempt_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct RedirectConfig {
    pub shards: usize,
    pub default_status: u16,
    pub flush_interval: Duration,
    pub flush_max_batch: usize,
    pub durable_ack: bool,
    /// Clicks queued per shard past which click detail is shed (counts are kept).
    pub shard_queue_limit: usize,
    pub cache_capacity: usize,
    /// A cached link is re-read from the store after this long.
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    pub max_endpoints_per_account: u32,
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub retry_jitter: f64,
    pub default_rate_limit_per_sec: u32,
    pub max_in_flight_per_endpoint: u32,
    pub disable_after_failed_deliveries: u32,
    pub allow_private_targets: bool,
}

#[derive(Debug, Clone)]
pub struct FraudConfig {
    pub enabled: bool,
    pub window: Duration,
    pub threshold: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub max_tracked_keys: usize,
}

#[derive(Debug, Clone)]
pub struct EnrichConfig {
    pub geoip_mmdb: Option<PathBuf>,
}

/// Every problem found in a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// Reads defaults, then the file (the given one must exist), then `RELURL_<SECTION>__<KEY>`.
pub fn load(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    match path {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError(vec![format!(
                    "config file {} does not exist",
                    path.display()
                )]));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_PATH)),
    }
    // Only RELURL_<SECTION>__<KEY>: other RELURL_* variables (test knobs) are not config.
    let env = Env::prefixed("RELURL_")
        .filter(|key| key.as_str().contains("__"))
        .split("__");
    from_figment(figment.merge(env))
}

pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
    let raw: RawConfig = figment.extract().map_err(|errors| {
        ConfigError(
            errors
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".");
                    let origin = e
                        .metadata
                        .as_ref()
                        .map(|m| format!(" (from {})", m.name))
                        .unwrap_or_default();
                    if key.is_empty() {
                        format!("{}{origin}", e.kind)
                    } else {
                        format!("{key}: {}{origin}", e.kind)
                    }
                })
                .collect(),
        )
    })?;
    raw.validate()
}

impl RawConfig {
    /// Checks every value and reports all problems together.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, expected: &str| {
            if !ok {
                errors.push(format!("{key}: expected {expected}"));
            }
        };

        let listen = self.server.listen.parse::<SocketAddr>();
        check(
            listen.is_ok(),
            "server.listen",
            &format!(
                "an address like 127.0.0.1:8080, got {:?}",
                self.server.listen
            ),
        );
        let base = self
            .server
            .public_base_url
            .trim_end_matches('/')
            .to_string();
        check(
            base.starts_with("http://") || base.starts_with("https://"),
            "server.public_base_url",
            &format!("an http(s) URL, got {:?}", self.server.public_base_url),
        );
        let mut trusted_proxies = Vec::new();
        for (i, cidr) in self.server.trusted_proxies.iter().enumerate() {
            match cidr.parse::<Cidr>() {
                Ok(c) => trusted_proxies.push(c),
                Err(_) => check(
                    false,
                    &format!("server.trusted_proxies[{i}]"),
                    &format!("a CIDR like 10.0.0.0/8 or an address, got {cidr:?}"),
                ),
            }
        }
        check(
            (1..=1 << 30).contains(&self.server.max_body_bytes),
            "server.max_body_bytes",
            "a size between 1 and 1073741824",
        );

        let backend = match self.store.backend.as_str() {
            "embedded" => Some(StoreBackend::Embedded),
            "scylla" => Some(StoreBackend::Scylla),
            other => {
                check(
                    false,
                    "store.backend",
                    &format!("\"embedded\" or \"scylla\", got {other:?}"),
                );
                None
            }
        };
        check(
            !self.store.path.is_empty(),
            "store.path",
            "a directory path",
        );
        check(
            !self.store.scylla_nodes.is_empty(),
            "store.scylla_nodes",
            "at least one host:port",
        );
        check(
            !self.store.scylla_keyspace.is_empty()
                && self
                    .store
                    .scylla_keyspace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "store.scylla_keyspace",
            "a CQL identifier (letters, digits, _)",
        );
        check(
            self.store.scylla_replication_factor >= 1,
            "store.scylla_replication_factor",
            "at least 1",
        );
        let click_ttl = parse_ttl(&self.store.click_ttl);
        check(
            click_ttl.is_some(),
            "store.click_ttl",
            &format!("{TTL_EXPECTED}, got {:?}", self.store.click_ttl),
        );
        let attempt_ttl = parse_ttl(&self.store.attempt_ttl);
        check(
            attempt_ttl.is_some(),
            "store.attempt_ttl",
            &format!("{TTL_EXPECTED}, got {:?}", self.store.attempt_ttl),
        );

        check(
            [301, 302, 307, 308].contains(&self.redirect.default_status),
            "redirect.default_status",
            "one of 301, 302, 307, 308",
        );
        check(
            self.redirect.flush_interval_ms >= 1,
            "redirect.flush_interval_ms",
            "at least 1",
        );
        check(
            self.redirect.flush_max_batch >= 1,
            "redirect.flush_max_batch",
            "at least 1",
        );
        check(
            self.redirect.shard_queue_limit >= 1,
            "redirect.shard_queue_limit",
            "at least 1",
        );
        check(
            self.redirect.cache_capacity >= 16,
            "redirect.cache_capacity",
            "at least 16",
        );
        let cache_ttl = parse_duration(&self.redirect.cache_ttl).filter(|d| !d.is_zero());
        check(
            cache_ttl.is_some(),
            "redirect.cache_ttl",
            "a duration like \"30s\" or \"5m\", above zero",
        );
        let negative_cache_ttl = parse_duration(&self.redirect.negative_cache_ttl);
        check(
            negative_cache_ttl.is_some(),
            "redirect.negative_cache_ttl",
            "a duration like \"500ms\", \"5s\", \"1m\"",
        );

        check(
            self.webhooks.timeout_ms >= 1,
            "webhooks.timeout_ms",
            "at least 1",
        );
        let mut retry_schedule = Vec::new();
        for (i, d) in self.webhooks.retry_schedule.iter().enumerate() {
            match parse_duration(d) {
                Some(d) => retry_schedule.push(d),
                None => check(
                    false,
                    &format!("webhooks.retry_schedule[{i}]"),
                    &format!("a duration like \"30s\", \"1m\", \"1h\", got {d:?}"),
                ),
            }
        }
        check(
            retry_schedule.windows(2).all(|w| w[0] <= w[1]),
            "webhooks.retry_schedule",
            "offsets in increasing order",
        );
        check(
            (0.0..=1.0).contains(&self.webhooks.retry_jitter),
            "webhooks.retry_jitter",
            "a fraction between 0.0 and 1.0",
        );
        check(
            self.webhooks.default_rate_limit_per_sec >= 1,
            "webhooks.default_rate_limit_per_sec",
            "at least 1",
        );
        check(
            self.webhooks.max_in_flight_per_endpoint >= 1,
            "webhooks.max_in_flight_per_endpoint",
            "at least 1",
        );
        check(
            self.webhooks.max_endpoints_per_account >= 1,
            "webhooks.max_endpoints_per_account",
            "at least 1",
        );
        check(
            self.webhooks.disable_after_failed_deliveries >= 1,
            "webhooks.disable_after_failed_deliveries",
            "at least 1",
        );

        check(
            self.fraud.window_secs >= 1,
            "fraud.window_secs",
            "at least 1",
        );
        check(self.fraud.threshold >= 1, "fraud.threshold", "at least 1");
        check(
            (1..=32).contains(&self.fraud.ipv4_prefix),
            "fraud.ipv4_prefix",
            "a prefix length between 1 and 32",
        );
        check(
            (1..=128).contains(&self.fraud.ipv6_prefix),
            "fraud.ipv6_prefix",
            "a prefix length between 1 and 128",
        );
        check(
            self.fraud.max_tracked_keys >= 1,
            "fraud.max_tracked_keys",
            "at least 1",
        );

        let geoip_mmdb =
            (!self.enrich.geoip_mmdb.is_empty()).then(|| PathBuf::from(&self.enrich.geoip_mmdb));
        if let Some(path) = &geoip_mmdb {
            check(
                path.is_file(),
                "enrich.geoip_mmdb",
                &format!("a readable .mmdb file, {} is not a file", path.display()),
            );
        }

        let cluster = self.cluster.validate(&mut errors);
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let (
            Ok(listen),
            Some(backend),
            Some(negative_cache_ttl),
            Some(click_ttl),
            Some(attempt_ttl),
            Some(cache_ttl),
            Some(cluster),
        ) = (
            listen,
            backend,
            negative_cache_ttl,
            click_ttl,
            attempt_ttl,
            cache_ttl,
            cluster,
        )
        else {
            unreachable!("each failure above pushed an error");
        };
        let shards = match self.redirect.shards {
            0 => 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Ok(Config {
            server: ServerConfig {
                listen,
                public_base_url: base,
                trusted_proxies,
                max_body_bytes: self.server.max_body_bytes as usize,
            },
            auth: AuthConfig {
                admin_token: self.auth.admin_token,
            },
            store: StoreConfig {
                backend,
                path: PathBuf::from(self.store.path),
                scylla_nodes: self.store.scylla_nodes,
                scylla_keyspace: self.store.scylla_keyspace,
                scylla_replication_factor: self.store.scylla_replication_factor,
                click_ttl,
                attempt_ttl,
            },
            redirect: RedirectConfig {
                shards,
                default_status: self.redirect.default_status,
                flush_interval: Duration::from_millis(self.redirect.flush_interval_ms),
                flush_max_batch: self.redirect.flush_max_batch as usize,
                durable_ack: self.redirect.durable_ack,
                shard_queue_limit: self.redirect.shard_queue_limit as usize,
                cache_capacity: self.redirect.cache_capacity as usize,
                cache_ttl,
                negative_cache_ttl,
            },
            webhooks: WebhooksConfig {
                max_endpoints_per_account: self.webhooks.max_endpoints_per_account,
                timeout: Duration::from_millis(self.webhooks.timeout_ms),
                retry_schedule,
                retry_jitter: self.webhooks.retry_jitter,
                default_rate_limit_per_sec: self.webhooks.default_rate_limit_per_sec,
                max_in_flight_per_endpoint: self.webhooks.max_in_flight_per_endpoint,
                disable_after_failed_deliveries: self.webhooks.disable_after_failed_deliveries,
                allow_private_targets: self.webhooks.allow_private_targets,
            },
            fraud: FraudConfig {
                enabled: self.fraud.enabled,
                window: Duration::from_secs(self.fraud.window_secs),
                threshold: self.fraud.threshold,
                ipv4_prefix: self.fraud.ipv4_prefix,
                ipv6_prefix: self.fraud.ipv6_prefix,
                max_tracked_keys: self.fraud.max_tracked_keys as usize,
            },
            enrich: EnrichConfig { geoip_mmdb },
            cluster,
        })
    }
}

const TTL_EXPECTED: &str = "a duration like \"30d\" or \"12h\", from 1s to 3650d";

/// A CQL TTL: whole seconds, at least one, and at most ten years (the legacy
/// storage format cannot hold expiry dates past 2038).
fn parse_ttl(text: &str) -> Option<Duration> {
    parse_duration(text).filter(|d| (1..=3650 * 86_400).contains(&d.as_secs()))
}

/// Parses `"300ms"`, `"5s"`, `"1m"`, `"1h"` (also `"1d"`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

impl Config {
    /// Defaults with the given overrides, as TOML; for tests and tools.
    pub fn from_toml(toml: &str) -> Result<Config, ConfigError> {
        from_figment(
            Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(toml)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(
            parse_duration("90d"),
            Some(Duration::from_secs(90 * 86_400))
        );
    }

    #[test]
    fn store_ttls_default_and_are_checked() {
        let config = Config::from_toml("").expect("defaults validate");
        assert_eq!(config.store.click_ttl, Duration::from_secs(90 * 86_400));
        assert_eq!(config.store.attempt_ttl, Duration::from_secs(30 * 86_400));
        let err = Config::from_toml("[store]\nclick_ttl = \"forever\"\nattempt_ttl = \"0s\"\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("store.click_ttl"), "{text}");
        assert!(text.contains("store.attempt_ttl"), "{text}");
        assert_eq!(err.0.len(), 2, "{text}");
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::from_toml("").expect("defaults validate");
        assert_eq!(config.redirect.default_status, 302);
        assert_eq!(config.webhooks.retry_schedule.len(), 5);
        assert!(config.redirect.shards >= 2);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[server]\nlisten_port = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("listen_port"), "{text}");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let err = Config::from_toml(
            "[redirect]\ndefault_status = 200\n[webhooks]\nretry_schedule = [\"1m\", \"soon\"]\n[store]\nbackend = \"mysql\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("redirect.default_status"), "{text}");
        assert!(text.contains("webhooks.retry_schedule[1]"), "{text}");
        assert!(text.contains("store.backend"), "{text}");
        assert_eq!(err.0.len(), 3, "{text}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Config::from_toml("[fraud]\nthreshold = \"many\"\n").unwrap_err();
        assert!(err.to_string().contains("fraud.threshold"), "{err}");
    }
}
