//! `[cluster]`: how often a node says it is alive, how long its heartbeat and
//! leases live, and optionally a fixed node id. Read only on the scylla
//! backend; the embedded backend runs as one node and ignores the section.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Errors, HOUR, MILLI};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCluster {
    pub heartbeat: String,
    pub lease_ttl: String,
    /// Empty: a fresh UUIDv7 at every start.
    pub node_id: String,
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            heartbeat: "1s".into(),
            lease_ttl: "10s".into(),
            node_id: String::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Heartbeat and lease loop period; also the fraud count flush period.
    pub heartbeat: Duration,
    /// TTL of heartbeat and lease rows: a dead node's endpoints move within it.
    pub lease_ttl: Duration,
    pub node_id: Option<Uuid>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(10),
            node_id: None,
        }
    }
}

impl RawCluster {
    /// Checked only on the scylla backend (`active`); elsewhere the defaults stand.
    pub(super) fn validate(self, active: bool, errors: &mut Errors) -> ClusterConfig {
        if !active {
            return ClusterConfig::default();
        }
        let heartbeat = errors.duration("cluster.heartbeat", &self.heartbeat, MILLI..=HOUR);
        // Rows live in whole seconds (CQL TTLs).
        let lease_ttl = errors.seconds(
            "cluster.lease_ttl",
            &self.lease_ttl,
            Duration::from_secs(1)..=HOUR,
        );
        if let (Some(beat), Some(ttl)) = (heartbeat, lease_ttl) {
            // Leases renew every ttl/4, checked once per heartbeat.
            errors.check(
                beat * 4 <= ttl,
                "cluster.lease_ttl",
                format_args!("at least four heartbeats ({:?}), got {ttl:?}", beat * 4),
            );
        }
        let node_id = match self.node_id.trim() {
            "" => None,
            text => errors.parse::<Uuid>("cluster.node_id", text, "a UUID"),
        };
        let defaults = ClusterConfig::default();
        ClusterConfig {
            heartbeat: heartbeat.unwrap_or(defaults.heartbeat),
            lease_ttl: lease_ttl.unwrap_or(defaults.lease_ttl),
            node_id,
        }
    }
}
