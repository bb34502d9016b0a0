//! The k6 scripts in `load-tests/k6/` (k6 itself is not installed here): each
//! runs once under Node with stand-ins for the k6 modules, so a script that does
//! not load, throws, or calls a route docs/openapi.json does not have fails
//! (`load-tests/k6/check/check.mjs`); the checker's own tests show it can fail.
//!
//! Needs Node.js; skipped with a message when absent, unless
//! `RELURL_REQUIRE_NODE=1` (CI), where its absence fails the test.

use std::{path::Path, process::Command};

fn node(args: &[&str]) -> Option<std::process::Output> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match Command::new("node").args(args).current_dir(root).output() {
        Ok(output) => Some(output),
        Err(error) => {
            assert!(
                std::env::var("RELURL_REQUIRE_NODE").as_deref() != Ok("1"),
                "RELURL_REQUIRE_NODE=1 but node cannot be run: {error}"
            );
            eprintln!("k6_scripts: node not found ({error}), test skipped");
            None
        }
    }
}

fn assert_success(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_k6_script_runs_once_against_the_documented_routes() {
    if let Some(output) = node(&["load-tests/k6/check/check.mjs"]) {
        assert_success("check.mjs", &output);
    }
}

#[test]
fn the_k6_checker_fails_bad_scripts() {
    if let Some(output) = node(&["--test", "load-tests/k6/check/check.test.mjs"]) {
        assert_success("the checker's tests", &output);
    }
}
