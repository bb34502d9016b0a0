//! Fraud policy over real HTTP: a flooding range is blocked on the link it
//! floods (the default) or the link is disabled (`disable_link`); incidents say
//! which; a re-enabled link has a grace period.

mod common;

use futures::StreamExt;
use http::StatusCode;
use serde_json::{Value, json};

use common::{TestServer, eventually, metric};

/// Loopback is a trusted proxy, so X-Forwarded-For picks the client; a minute's
/// window so a slow machine still lands 201 clicks inside it.
const CONFIG: &str = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
                      [redirect]\ndurable_ack = true\nflush_interval = \"2ms\"\n\
                      [fraud]\nwindow = \"60s\"\n";

/// `n` clicks on `code` from 203.0.113.0/24, eight at a time; their statuses.
async fn flood(server: &TestServer, code: &str, n: usize) -> Vec<StatusCode> {
    let path = format!("/{code}");
    futures::stream::iter(0..n)
        .map(|i| {
            let (path, ip) = (&path, format!("203.0.113.{}", i % 250));
            async move {
                let headers = [("x-forwarded-for", ip.as_str())];
                server.visit(path, &headers).await.status
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// The account's incidents on `code`, newest first, once there are `n`.
async fn incidents(server: &TestServer, key: &str, code: &str, n: usize) -> Vec<Value> {
    eventually(|| async {
        let reply = server.get("/v1/fraud/incidents", Some(key)).await;
        let items: Vec<Value> = reply.body["items"]
            .as_array()?
            .iter()
            .filter(|i| i["code"] == code)
            .cloned()
            .collect();
        (items.len() >= n).then_some(items)
    })
    .await
}

#[tokio::test]
async fn a_flooding_range_is_blocked_and_the_link_stays_up_for_everyone_else() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    let link = server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "victim"}),
        )
        .await;
    assert_eq!(link["fraud_policy"], Value::Null, "the server default");

    let statuses = flood(&server, "victim", 300).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND));
    let incident = incidents(&server, &key, "victim", 1).await.remove(0);
    assert_eq!(incident["action"], "block_range");
    assert_eq!(incident["ip_range"], "203.0.113.0/24");
    assert_eq!(incident["clicks"], 201);
    let link = server.get("/v1/links/victim", Some(&key)).await;
    assert_eq!(link.body["disabled"], false);

    // The range's further clicks are redirected, not recorded; others are.
    let (count, blocked) = (
        server.click_count(&key, "victim").await,
        metric(&server, "relurl_fraud_clicks_blocked_total").await,
    );
    let statuses = flood(&server, "victim", 50).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND));
    let visitor = [("x-forwarded-for", "198.51.100.7")];
    let reply = server.visit("/victim", &visitor).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    // durable_ack: each answered click is stored (or dropped) by now.
    assert_eq!(server.click_count(&key, "victim").await, count + 1);
    let clicks = server
        .get("/v1/links/victim/clicks?limit=1", Some(&key))
        .await;
    assert_eq!(clicks.body["items"][0]["ip"], "198.51.100.7");
    let dropped = metric(&server, "relurl_fraud_clicks_blocked_total").await - blocked;
    assert!(dropped >= 50.0, "{dropped} blocked clicks counted");
    assert_eq!(incidents(&server, &key, "victim", 1).await.len(), 1);
}

#[tokio::test]
async fn a_disable_link_policy_disables_and_a_reenabled_link_gets_a_grace_period() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    let body = json!({"destination": "https://example.com", "code": "strict",
                      "fraud_policy": "disable_link"});
    assert_eq!(
        server.link(&key, body).await["fraud_policy"],
        "disable_link"
    );

    let statuses = flood(&server, "strict", 300).await;
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::FOUND, StatusCode::GONE].contains(s))
    );
    let incident = incidents(&server, &key, "strict", 1).await.remove(0);
    assert_eq!(incident["action"], "disable_link");
    assert_eq!(incident["clicks"], 201);
    assert_eq!(server.visit("/strict", &[]).await.status, StatusCode::GONE);

    // Re-enabled: within the grace period a new flood blocks the range only.
    let reply = server
        .patch("/v1/links/strict", Some(&key), json!({"disabled": false}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let statuses = flood(&server, "strict", 300).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND));
    let newest = incidents(&server, &key, "strict", 2).await.remove(0);
    assert_eq!(newest["action"], "block_range");
    assert_eq!(server.visit("/strict", &[]).await.status, StatusCode::FOUND);
    let link = server.get("/v1/links/strict", Some(&key)).await;
    assert_eq!(link.body["disabled"], false);
}

#[tokio::test]
async fn the_fraud_policy_is_set_reset_and_checked() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let bad = json!({"destination": "https://example.com", "fraud_policy": "ban_everyone"});
    let reply = server.post("/v1/links", Some(&key), bad).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_field(), "fraud_policy");

    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "p"}),
        )
        .await;
    let set = json!({"fraud_policy": "disable_link"});
    let reply = server.patch("/v1/links/p", Some(&key), set).await;
    assert_eq!(reply.body["fraud_policy"], "disable_link");
    let reply = server
        .patch("/v1/links/p", Some(&key), json!({"tags": ["x"]}))
        .await;
    assert_eq!(
        reply.body["fraud_policy"], "disable_link",
        "absent: unchanged"
    );
    let reply = server
        .patch("/v1/links/p", Some(&key), json!({"fraud_policy": null}))
        .await;
    assert_eq!(reply.body["fraud_policy"], Value::Null, "null: the default");
    let reply = server.get("/v1/links/p", Some(&key)).await;
    assert_eq!(reply.body["fraud_policy"], Value::Null);
}
