//! The `Store` conformance suite against every backend available here.

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
