//! Where the CQL server for the scylla-backend tests is: `RELURL_TEST_SCYLLA`
//! (host:port). Without it the tests say so and pass, unless
//! `RELURL_REQUIRE_SCYLLA=1`, which makes its absence a failure.

pub fn node() -> Option<String> {
    match std::env::var("RELURL_TEST_SCYLLA") {
        Ok(node) if !node.is_empty() => Some(node),
        _ => {
            assert!(
                std::env::var("RELURL_REQUIRE_SCYLLA").as_deref() != Ok("1"),
                "RELURL_REQUIRE_SCYLLA=1 but RELURL_TEST_SCYLLA is not set"
            );
            eprintln!("RELURL_TEST_SCYLLA not set: CQL backend test skipped");
            None
        }
    }
}

/// Server configuration for the scylla backend in a fresh keyspace.
pub fn backend_config(node: &str) -> (String, String) {
    let keyspace = format!("relurl_e2e_{}", uuid::Uuid::now_v7().simple());
    let toml = format!(
        "[store]\nbackend = \"scylla\"\nscylla_nodes = [\"{node}\"]\nscylla_keyspace = \"{keyspace}\"\n"
    );
    (toml, keyspace)
}
