//! `[fraud]`: the click-flood detector's window, threshold and what it does
//! past the threshold.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DAY, Errors, HOUR};
use crate::domain::FraudAction;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFraud {
    pub enabled: bool,
    pub window: String,
    pub threshold: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub max_tracked_keys: u32,
    pub policy: FraudAction,
    pub block_for: String,
    pub grace_after_enable: String,
}

impl Default for RawFraud {
    fn default() -> Self {
        Self {
            enabled: true,
            window: "10s".into(),
            threshold: 200,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            max_tracked_keys: 1_000_000,
            policy: FraudAction::BlockRange,
            block_for: "1h".into(),
            grace_after_enable: "10m".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FraudConfig {
    pub enabled: bool,
    /// Whole seconds: windows count clicks in one-second buckets.
    pub window: Duration,
    pub threshold: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub max_tracked_keys: usize,
    /// For links without a `fraud_policy` of their own.
    pub policy: FraudAction,
    /// How long a flooding range stays blocked on a link (whole seconds).
    pub block_for: Duration,
    /// After a re-enable, the link is not disabled again for this long (whole seconds).
    pub grace_after_enable: Duration,
}

impl RawFraud {
    pub(super) fn validate(self, errors: &mut Errors) -> FraudConfig {
        // One bucket per second per tracked key: an hour bounds that memory.
        let window = errors.seconds("fraud.window", &self.window, Duration::from_secs(1)..=HOUR);
        errors.check(self.threshold >= 1, "fraud.threshold", "at least 1");
        errors.check(
            (1..=32).contains(&self.ipv4_prefix),
            "fraud.ipv4_prefix",
            "a prefix length between 1 and 32",
        );
        errors.check(
            (1..=128).contains(&self.ipv6_prefix),
            "fraud.ipv6_prefix",
            "a prefix length between 1 and 128",
        );
        errors.check(
            self.max_tracked_keys >= 1,
            "fraud.max_tracked_keys",
            "at least 1",
        );
        let block_for = errors.seconds(
            "fraud.block_for",
            &self.block_for,
            Duration::from_secs(1)..=7 * DAY,
        );
        let grace = errors.seconds(
            "fraud.grace_after_enable",
            &self.grace_after_enable,
            Duration::ZERO..=DAY,
        );
        FraudConfig {
            enabled: self.enabled,
            window: window.unwrap_or_default(),
            threshold: self.threshold,
            ipv4_prefix: self.ipv4_prefix,
            ipv6_prefix: self.ipv6_prefix,
            max_tracked_keys: self.max_tracked_keys as usize,
            policy: self.policy,
            block_for: block_for.unwrap_or_default(),
            grace_after_enable: grace.unwrap_or_default(),
        }
    }
}
