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
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use common::{TestServer, process::Group};
use http::StatusCode;
use serde_json::json;

/// The suite bounds itself at 4 minutes; this is the backstop.
const HARD_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn ui_is_a_reserved_code_that_serves_the_dashboard_with_a_strict_policy() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let refused = server
        .post(
            "/v1/links",
            Some(&key),
            json!({"destination": "https://example.com", "code": "ui"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.error_field(), "code");

    let bare = server.visit("/ui", &[]).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.header("location"), Some("/ui/"));
    // Percent-encoded, it is still the reserved word, not a link.
    assert_eq!(
        server.visit("/%75i", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let page = server.visit("/ui/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(page.body.as_str().expect("html").contains("app.js"));

    let script = server.visit("/ui/app.js", &[]).await;
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let etag = script.header("etag").expect("an etag").to_string();
    let again = server
        .visit("/ui/app.js", &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        server.visit("/ui/nope.js", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

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

#[test]
fn every_dashboard_page_works_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = common::node::installed("tests/ui");
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
