//! The `Store` conformance suite against every backend available here.
//!
//! The CQL backend runs when `RELURL_TEST_SCYLLA=host:port` names a server
//! (`scripts/cql-server.sh start` gives one on 127.0.0.1:9042); each case gets a
//! fresh keyspace. Without it those cases pass after saying so once, unless
//! `RELURL_REQUIRE_SCYLLA=1` (CI), which makes them fail.

use std::sync::Arc;

use relurl::store::{EmbeddedStore, SharedStore};

mod embedded {
    use super::*;

    async fn fresh() -> Option<SharedStore> {
        // Leaked on purpose: the directory must outlive the store inside the test.
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
        Some(Arc::new(
            EmbeddedStore::open(dir.path()).expect("open store"),
        ))
    }

    relurl::store_conformance_suite!(fresh().await);
}

mod scylla {
    use std::{io::Write, sync::Once, time::Duration};

    use relurl::store::{ScyllaOptions, ScyllaStore};

    use super::*;

    /// A store in a keyspace of its own, or None when no CQL server is configured.
    async fn fresh() -> Option<SharedStore> {
        let required = std::env::var("RELURL_REQUIRE_SCYLLA").is_ok_and(|v| v == "1");
        let Some(node) = std::env::var("RELURL_TEST_SCYLLA")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            assert!(
                !required,
                "RELURL_REQUIRE_SCYLLA=1 but RELURL_TEST_SCYLLA is not set \
                 (start one with scripts/cql-server.sh start, then RELURL_TEST_SCYLLA=127.0.0.1:9042)"
            );
            static SKIPPED: Once = Once::new();
            SKIPPED.call_once(|| {
                // Straight to stderr: the test harness captures eprintln!.
                let _ = writeln!(
                    std::io::stderr(),
                    "store conformance: RELURL_TEST_SCYLLA not set, CQL backend skipped"
                );
            });
            return None;
        };
        let options = ScyllaOptions {
            nodes: vec![node.clone()],
            keyspace: format!("relurl_test_{}", uuid::Uuid::new_v4().simple()),
            replication_factor: 1,
            click_ttl: Duration::from_secs(90 * 86_400),
            attempt_ttl: Duration::from_secs(30 * 86_400),
        };
        match ScyllaStore::open(&options).await {
            Ok(store) => Some(Arc::new(store)),
            Err(e) => panic!("RELURL_TEST_SCYLLA={node}: cannot open the CQL store: {e}"),
        }
    }

    relurl::store_conformance_suite!(fresh().await);
}
