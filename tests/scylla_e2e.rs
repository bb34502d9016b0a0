//! The server end to end on the scylla backend, against a real CQL server:
//! a link is created and followed, its click stored and its webhook delivered;
//! after a restart everything is still there.

mod common;

use std::time::Duration;

use common::{TestServer, cql, receiver};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_click_is_stored_and_delivered_and_survives_a_restart() {
    let Some(node) = cql::node() else { return };
    let (store, _) = cql::backend_config(&node);
    let config = format!(
        "{store}[webhooks]\nallow_private_targets = true\nretry_schedule = [\"300ms\"]\n[redirect]\ndurable_ack = true\n"
    );
    let server = TestServer::start(&config).await;
    let key = server.account("acme").await;
    let sink = receiver::Receiver::start().await;
    let hook = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": sink.url("/"), "events": ["link.clicked"]}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{:?}", hook.body);
    server
        .link(
            &key,
            json!({"destination": "https://example.com/cql", "code": "cql"}),
        )
        .await;

    let visit = server
        .visit("/cql?from=test", &[("user-agent", "curl/8.5.0")])
        .await;
    assert_eq!(visit.status, StatusCode::FOUND);
    assert_eq!(
        visit.header("location"),
        Some("https://example.com/cql?from=test")
    );
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].json()["type"], "link.clicked");
    assert_eq!(got[0].json()["data"]["click"]["is_bot"], true);
    assert_eq!(server.click_count(&key, "cql").await, 1);

    let mut server = server.restart(&config).await;
    let visit = server.visit("/cql", &[]).await;
    assert_eq!(visit.status, StatusCode::FOUND);
    assert_eq!(server.click_count(&key, "cql").await, 2);
    let clicks = server.get("/v1/links/cql/clicks", Some(&key)).await;
    assert_eq!(clicks.body["items"].as_array().unwrap().len(), 2);
    let endpoints = server.get("/v1/webhooks", Some(&key)).await;
    assert_eq!(endpoints.body["items"].as_array().unwrap().len(), 1);
    sink.wait_for(2, Duration::from_secs(20)).await;
    server.stop().await;
}
