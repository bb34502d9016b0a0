//! Webhook secrets at rest: sealed in the store's files, and a server whose key
//! does not open them refuses to start.

mod common;

use std::path::Path;

use common::{ADMIN, TestServer};
use http::StatusCode;
use serde_json::json;

const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// Creates an endpoint; its secret.
async fn endpoint_secret(server: &TestServer) -> String {
    let key = server.account("acme").await;
    let made = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "https://93.184.216.34/sealed-check", "events": ["*"]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    made.body["secret"].as_str().unwrap().to_string()
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_store_files_hold_no_secret_in_clear() {
    for extra in ["", &format!("[auth]\nencryption_key = \"{KEY_A}\"\n")] {
        let mut server = TestServer::start(extra).await;
        let secret = endpoint_secret(&server).await;
        server.stop().await;
        let bytes = all_bytes(&server.dir);
        // The endpoint's URL is there in clear: the scan does see the record.
        assert!(contains(&bytes, "sealed-check"));
        let body = secret.strip_prefix("whsec_").unwrap();
        assert!(!contains(&bytes, body), "secret found in clear ({extra:?})");
    }
}

async fn start(dir: &Path, extra: &str) -> anyhow::Result<relurl::app::Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    relurl::app::start(common::config(dir, extra), listener).await
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_refused_once_secrets_are_sealed() {
    let with =
        |key: &str| format!("[auth]\nadmin_token = \"{ADMIN}\"\nencryption_key = \"{key}\"\n");
    let mut server = TestServer::start(&with(KEY_A)).await;
    endpoint_secret(&server).await;
    server.stop().await;
    let dir = server.dir.clone();
    for extra in [with(KEY_B), String::new()] {
        let refused = start(&dir, &extra).await.err().expect("start-up refused");
        assert!(
            format!("{refused:#}").contains("auth.encryption_key"),
            "{refused:#}"
        );
    }
    // The right key still opens them, and rotation keeps them readable.
    let rotated =
        format!("[auth]\nencryption_key = \"{KEY_B}\"\nprevious_encryption_keys = [\"{KEY_A}\"]\n");
    start(&dir, &rotated)
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    // Re-sealed under the new key at that start: the old key is no longer needed.
    start(&dir, &with(KEY_B))
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}

/// The scylla backend with a key configured: a raw CQL read of the endpoints
/// table shows no secret in clear.
#[tokio::test]
async fn the_cql_endpoints_table_holds_no_secret_in_clear() {
    let Some(node) = common::cql::node() else {
        return;
    };
    let (store, keyspace) = common::cql::backend_config(&node);
    let extra = format!("{store}[auth]\nencryption_key = \"{KEY_A}\"\n");
    let mut server = TestServer::start(&extra).await;
    let secret = endpoint_secret(&server).await;
    server.stop().await;
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&node)
        .build()
        .await
        .unwrap();
    let rows = session
        .query_unpaged(format!("SELECT json FROM {keyspace}.endpoints"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let texts: Vec<String> = rows
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("sealed-check"));
    let body = secret.strip_prefix("whsec_").unwrap();
    assert!(!texts[0].contains(body), "secret in clear: {}", texts[0]);
}
