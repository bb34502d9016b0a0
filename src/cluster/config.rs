//! The `[cluster]` section: how often a node says it is alive, how long its
//! heartbeat and leases live, and optionally a fixed node id. Read only on the
//! scylla backend; the embedded backend runs as one node.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::parse_duration;

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

impl RawCluster {
    /// The validated section, or `None` with every problem pushed to `errors`.
    pub fn validate(&self, errors: &mut Vec<String>) -> Option<ClusterConfig> {
        let before = errors.len();
        let heartbeat = parse_duration(&self.heartbeat).filter(|d| !d.is_zero());
        if heartbeat.is_none() {
            errors.push(format!(
                "cluster.heartbeat: expected a duration like \"1s\" or \"200ms\", above zero, got {:?}",
                self.heartbeat
            ));
        }
        let lease_ttl = parse_duration(&self.lease_ttl).filter(|d| *d >= Duration::from_secs(1));
        if lease_ttl.is_none() {
            errors.push(format!(
                "cluster.lease_ttl: expected a duration like \"10s\", at least 1s, got {:?}",
                self.lease_ttl
            ));
        }
        if let (Some(beat), Some(ttl)) = (heartbeat, lease_ttl) {
            // Leases renew every ttl/4, checked once per heartbeat.
            if beat * 4 > ttl {
                errors.push(format!(
                    "cluster.lease_ttl: expected at least four heartbeats ({:?}), got {ttl:?}",
                    beat * 4
                ));
            }
        }
        let node_id = match self.node_id.trim() {
            "" => None,
            text => {
                let parsed = text.parse::<Uuid>().ok();
                if parsed.is_none() {
                    errors.push(format!("cluster.node_id: expected a UUID, got {text:?}"));
                }
                parsed
            }
        };
        if errors.len() > before {
            return None;
        }
        Some(ClusterConfig {
            heartbeat: heartbeat?,
            lease_ttl: lease_ttl?,
            node_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(heartbeat: &str, lease_ttl: &str, node_id: &str) -> RawCluster {
        RawCluster {
            heartbeat: heartbeat.into(),
            lease_ttl: lease_ttl.into(),
            node_id: node_id.into(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let mut errors = Vec::new();
        let c = RawCluster::default().validate(&mut errors).expect("valid");
        assert_eq!(c.heartbeat, Duration::from_secs(1));
        assert_eq!(c.lease_ttl, Duration::from_secs(10));
        assert_eq!(c.node_id, None);
    }

    #[test]
    fn every_bad_key_is_named() {
        let mut errors = Vec::new();
        assert!(raw("0s", "soon", "node-1").validate(&mut errors).is_none());
        let joined = errors.join("\n");
        for key in ["cluster.heartbeat", "cluster.lease_ttl", "cluster.node_id"] {
            assert!(joined.contains(key), "{key} not named in {joined}");
        }
        let mut errors = Vec::new();
        assert!(raw("1s", "2s", "").validate(&mut errors).is_none());
        assert!(errors[0].contains("four heartbeats"), "{errors:?}");
    }

    #[test]
    fn a_fixed_node_id_is_kept() {
        let id = Uuid::now_v7();
        let mut errors = Vec::new();
        let c = raw("200ms", "2s", &id.to_string()).validate(&mut errors);
        assert_eq!(c.expect("valid").node_id, Some(id));
    }
}
