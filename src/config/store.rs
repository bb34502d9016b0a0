//! `[store]`: which backend holds the data, and that backend's settings. Keys
//! of the other backend are parsed (their types must fit) but not checked.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::{DAY, Errors};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Embedded,
    Scylla,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Embedded backend.
    pub path: PathBuf,
    pub scylla_nodes: Vec<String>,
    pub scylla_keyspace: String,
    pub scylla_replication_factor: u32,
    /// How long clicks are kept (scylla backend; the embedded one keeps them).
    pub click_ttl: Duration,
    /// How long delivery attempts are kept (scylla backend; the embedded one keeps them).
    pub attempt_ttl: Duration,
}

/// The longest CQL TTL kept: the legacy storage format cannot hold expiry
/// dates past 2038.
const MAX_TTL: Duration = Duration::from_secs(3650 * DAY.as_secs());

impl RawStore {
    pub(super) fn validate(self, errors: &mut Errors) -> StoreConfig {
        let backend = match self.backend.as_str() {
            "embedded" => Some(StoreBackend::Embedded),
            "scylla" => Some(StoreBackend::Scylla),
            other => {
                errors.push(
                    "store.backend",
                    format!("expected \"embedded\" or \"scylla\", got {other:?}"),
                );
                None
            }
        };

        let mut embedded = Errors::default();
        embedded.check(!self.path.is_empty(), "store.path", "a directory path");

        let mut scylla = Errors::default();
        scylla.check(
            !self.scylla_nodes.is_empty(),
            "store.scylla_nodes",
            "at least one host:port",
        );
        scylla.check(
            !self.scylla_keyspace.is_empty()
                && self
                    .scylla_keyspace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "store.scylla_keyspace",
            "a CQL identifier (letters, digits, _)",
        );
        scylla.check(
            self.scylla_replication_factor >= 1,
            "store.scylla_replication_factor",
            "at least 1",
        );
        let ttl = Duration::from_secs(1)..=MAX_TTL;
        let click_ttl = scylla.seconds("store.click_ttl", &self.click_ttl, ttl.clone());
        let attempt_ttl = scylla.seconds("store.attempt_ttl", &self.attempt_ttl, ttl);

        match backend {
            Some(StoreBackend::Embedded) => errors.append(embedded),
            Some(StoreBackend::Scylla) => errors.append(scylla),
            None => {}
        }
        StoreConfig {
            backend: backend.unwrap_or(StoreBackend::Embedded),
            path: PathBuf::from(self.path),
            scylla_nodes: self.scylla_nodes,
            scylla_keyspace: self.scylla_keyspace,
            scylla_replication_factor: self.scylla_replication_factor,
            click_ttl: click_ttl.unwrap_or_default(),
            attempt_ttl: attempt_ttl.unwrap_or_default(),
        }
    }
}
