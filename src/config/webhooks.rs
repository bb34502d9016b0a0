//! `[webhooks]`: how endpoints are limited, and how deliveries time out and retry.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DAY, Errors, MILLI, MINUTE};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhooks {
    pub max_endpoints_per_account: u32,
    pub timeout: String,
    pub retry_schedule: Vec<String>,
    pub retry_jitter: f64,
    pub default_rate_limit_per_sec: u32,
    pub max_in_flight_per_endpoint: u32,
    pub disable_after_failed_deliveries: u32,
    pub allow_private_targets: bool,
}

impl Default for RawWebhooks {
    fn default() -> Self {
        Self {
            max_endpoints_per_account: 5,
            timeout: "5s".into(),
            retry_schedule: ["1m", "5m", "15m", "30m", "1h"].map(String::from).to_vec(),
            retry_jitter: 0.1,
            default_rate_limit_per_sec: 50,
            max_in_flight_per_endpoint: 16,
            disable_after_failed_deliveries: 20,
            allow_private_targets: false,
        }
    }
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

impl RawWebhooks {
    pub(super) fn validate(self, errors: &mut Errors) -> WebhooksConfig {
        errors.check(
            self.max_endpoints_per_account >= 1,
            "webhooks.max_endpoints_per_account",
            "at least 1",
        );
        let timeout = errors.duration("webhooks.timeout", &self.timeout, MILLI..=5 * MINUTE);
        let retry_schedule: Vec<Duration> = self
            .retry_schedule
            .iter()
            .enumerate()
            .filter_map(|(i, offset)| {
                errors.duration(
                    &format!("webhooks.retry_schedule[{i}]"),
                    offset,
                    Duration::ZERO..=30 * DAY,
                )
            })
            .collect();
        errors.check(
            retry_schedule.is_sorted(),
            "webhooks.retry_schedule",
            "offsets in increasing order",
        );
        errors.check(
            (0.0..=1.0).contains(&self.retry_jitter),
            "webhooks.retry_jitter",
            "a fraction between 0.0 and 1.0",
        );
        errors.check(
            self.default_rate_limit_per_sec >= 1,
            "webhooks.default_rate_limit_per_sec",
            "at least 1",
        );
        errors.check(
            self.max_in_flight_per_endpoint >= 1,
            "webhooks.max_in_flight_per_endpoint",
            "at least 1",
        );
        errors.check(
            self.disable_after_failed_deliveries >= 1,
            "webhooks.disable_after_failed_deliveries",
            "at least 1",
        );
        WebhooksConfig {
            max_endpoints_per_account: self.max_endpoints_per_account,
            timeout: timeout.unwrap_or_default(),
            retry_schedule,
            retry_jitter: self.retry_jitter,
            default_rate_limit_per_sec: self.default_rate_limit_per_sec,
            max_in_flight_per_endpoint: self.max_in_flight_per_endpoint,
            disable_after_failed_deliveries: self.disable_after_failed_deliveries,
            allow_private_targets: self.allow_private_targets,
        }
    }
}
