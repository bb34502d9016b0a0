//! The dashboard at `/ui/` in a real browser: `tests/ui/run.mjs` starts this
//! build's relurl and a loopback webhook receiver, then drives Debian's
//! headless Chromium (puppeteer-core from npm, no browser download) through
//! every page. Screenshots land in `target/ui-screenshots/`.
//!
//! Needs Node.js, npm and Chromium (`CHROMIUM`, default `/usr/bin/chromium`);
//! skipped with a message when absent, unless `RELURL_REQUIRE_CHROMIUM=1`
//! (CI), where their absence fails the test.

mod common;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::process::Group;

/// The suite bounds itself at 4 minutes; this is the backstop.
const HARD_TIMEOUT: Duration = Duration::from_secs(300);

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    let tools = Command::new("node").arg("--version").output().is_ok()
        && Command::new("npm").arg("--version").output().is_ok();
    if path.exists() && tools {
        return Some(path);
    }
    assert!(
        std::env::var("RELURL_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "RELURL_REQUIRE_CHROMIUM=1 but {} or node/npm is missing",
        path.display()
    );
    eprintln!("ui: {} or node/npm not found, test skipped", path.display());
    None
}

fn npm_ci(dir: &Path) {
    if dir.join("node_modules").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("run npm ci");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

#[test]
fn every_dashboard_page_works_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    npm_ci(&dir);
    let child = Command::new("node")
        .arg("run.mjs")
        .arg(env!("CARGO_BIN_EXE_relurl"))
        .env("CHROMIUM", &chromium)
        .current_dir(&dir)
        // Its own group: a timeout kills relurl and Chromium with it.
        .process_group(0)
        .spawn()
        .expect("start node run.mjs");
    let mut suite = Group(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = suite.0.try_wait().expect("wait for the suite") {
            break status;
        }
        assert!(
            started.elapsed() < HARD_TIMEOUT,
            "the browser suite ran past {HARD_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "the browser suite failed ({status}); its output is above"
    );
}
