//! `[redirect]`: the redirect hot path: click shards, their batching, and the
//! link cache.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DAY, Errors, HOUR, MILLI, MINUTE};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedirect {
    pub shards: u32,
    pub default_status: u16,
    pub flush_interval: String,
    pub flush_max_batch: u32,
    pub durable_ack: bool,
    pub shard_queue_limit: u32,
    pub cache_capacity: u32,
    pub cache_ttl: String,
    pub negative_cache_ttl: String,
}

impl Default for RawRedirect {
    fn default() -> Self {
        Self {
            shards: 0,
            default_status: 302,
            flush_interval: "5ms".into(),
            flush_max_batch: 1024,
            durable_ack: false,
            shard_queue_limit: 65536,
            cache_capacity: 1_000_000,
            cache_ttl: "30s".into(),
            negative_cache_ttl: "5s".into(),
        }
    }
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

impl RawRedirect {
    pub(super) fn validate(self, errors: &mut Errors) -> RedirectConfig {
        errors.check(
            [301, 302, 307, 308].contains(&self.default_status),
            "redirect.default_status",
            "one of 301, 302, 307, 308",
        );
        // Clicks wait in memory this long: past a minute a crash loses too much.
        let flush_interval = errors.duration(
            "redirect.flush_interval",
            &self.flush_interval,
            MILLI..=MINUTE,
        );
        errors.check(
            self.flush_max_batch >= 1,
            "redirect.flush_max_batch",
            "at least 1",
        );
        errors.check(
            self.shard_queue_limit >= 1,
            "redirect.shard_queue_limit",
            "at least 1",
        );
        errors.check(
            self.cache_capacity >= 16,
            "redirect.cache_capacity",
            "at least 16",
        );
        let cache_ttl = errors.duration("redirect.cache_ttl", &self.cache_ttl, MILLI..=DAY);
        // Zero: unknown codes are not remembered.
        let negative_cache_ttl = errors.duration(
            "redirect.negative_cache_ttl",
            &self.negative_cache_ttl,
            Duration::ZERO..=HOUR,
        );
        let shards = match self.shards {
            0 => 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        RedirectConfig {
            shards,
            default_status: self.default_status,
            flush_interval: flush_interval.unwrap_or_default(),
            flush_max_batch: self.flush_max_batch as usize,
            durable_ack: self.durable_ack,
            shard_queue_limit: self.shard_queue_limit as usize,
            cache_capacity: self.cache_capacity as usize,
            cache_ttl: cache_ttl.unwrap_or_default(),
            negative_cache_ttl: negative_cache_ttl.unwrap_or_default(),
        }
    }
}
