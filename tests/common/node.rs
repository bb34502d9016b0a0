//! Node.js for the tests that run `examples/receiver-node`: whether node and
//! npm are here (their absence fails the test under `RELURL_REQUIRE_NODE=1`,
//! as in CI) and the example's dependencies installed once.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;

use super::TestServer;

/// Whether node and npm can be run; says so on stderr when not (`test` names
/// the skipped test).
pub fn available(test: &str) -> bool {
    let found = Command::new("node").arg("--version").output().is_ok()
        && Command::new("npm").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("RELURL_REQUIRE_NODE").as_deref() != Ok("1"),
            "RELURL_REQUIRE_NODE=1 but node/npm are not installed"
        );
        eprintln!("{test}: node or npm not found, test skipped");
    }
    found
}

/// `examples/receiver-node`, with its dependencies installed (`npm ci` when
/// `node_modules` is missing).
pub fn receiver_dir() -> PathBuf {
    installed("examples/receiver-node")
}

/// The Node project at `path` (from the repository root), with its
/// dependencies installed (`npm ci` when `node_modules` is missing).
pub fn installed(path: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    if !dir.join("node_modules").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci failed");
    }
    dir
}

/// The example receiver's `/received` (on `port`) once the types of the events
/// it accepted are `expected`, sorted; panics after `within`.
pub async fn wait_for_events(port: u16, expected: &[&str], within: Duration) -> Value {
    let receiver = TestServer::attach(([127, 0, 0, 1], port).into());
    super::wait_until(
        within,
        &format!("events {expected:?} at the receiver"),
        || async {
            let r = receiver.get("/received", None).await;
            let mut types: Vec<String> = r.body["events"]
                .as_array()?
                .iter()
                .filter_map(|e| e["type"].as_str().map(String::from))
                .collect();
            types.sort();
            (types == expected).then_some(r.body)
        },
    )
    .await
}
