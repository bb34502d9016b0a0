//! Supervision of click shards and endpoint actors: a child out of restart
//! budget comes back after the window (readiness says so meanwhile), clicks
//! queued to a dead shard are written at shutdown, and the failing gauge goes
//! down again. Restart windows are set short per server, never waited out at 60 s.

mod common;

use std::time::Duration;

use common::{TestServer, eventually, metric_value};
use http::StatusCode;
use relurl::{
    clicks::{ShardSlot, shard::crash_shard},
    supervision::{RestartPolicy, with_restart_policy},
    webhooks::supervisor::{crash_endpoint, endpoint_actor},
};
use serde_json::json;

const ONE_SHARD: &str = "[redirect]\nshards = 1\n[fraud]\nenabled = false\n";

fn one_restart_per(window: Duration) -> RestartPolicy {
    RestartPolicy {
        max_restarts: 1,
        window,
    }
}

fn shard(server: &TestServer) -> &ShardSlot {
    &server.running.as_ref().expect("running").shards[0]
}

/// Crashes the shard, lets the one allowed restart happen, crashes it again:
/// it is now out of budget.
async fn exhaust_shard(server: &TestServer) {
    let first = crash_shard(shard(server)).expect("shard running");
    eventually(|| async { shard(server).actor_id().filter(|id| *id != first) }).await;
    crash_shard(shard(server)).expect("restarted shard running");
}

async fn readyz(server: &TestServer, status: StatusCode) -> serde_json::Value {
    eventually(|| async {
        let reply = server.get("/readyz", None).await;
        (reply.status == status).then_some(reply.body)
    })
    .await
}

#[tokio::test]
async fn a_click_shard_out_of_budget_comes_back_after_the_window() {
    let policy = one_restart_per(Duration::from_secs(2));
    let server = with_restart_policy(policy, TestServer::start(ONE_SHARD)).await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "back"}),
        )
        .await;
    readyz(&server, StatusCode::OK).await;

    exhaust_shard(&server).await;
    let body = readyz(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["reason"], "click shards not running: 0", "{body}");
    // Clicks keep counting while the shard is down; the returning shard writes them.
    for _ in 0..3 {
        assert_eq!(server.visit("/back", &[]).await.status, StatusCode::FOUND);
    }

    readyz(&server, StatusCode::OK).await;
    assert!(shard(&server).actor_id().is_some());
    eventually(|| async { (server.click_count(&key, "back").await == 3).then_some(()) }).await;
}

#[tokio::test]
async fn clicks_queued_to_a_dead_shard_are_written_at_shutdown() {
    // The window outlasts the test: the shard stays dead until shutdown.
    let policy = one_restart_per(Duration::from_secs(3600));
    let extra = "[redirect]\nshards = 1\nshard_queue_limit = 4\n[fraud]\nenabled = false\n";
    let server = with_restart_policy(policy, TestServer::start(extra)).await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "dead"}),
        )
        .await;

    exhaust_shard(&server).await;
    readyz(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    // Four clicks fit in the queue; six more are shed to the tally.
    for _ in 0..10 {
        assert_eq!(server.visit("/dead", &[]).await.status, StatusCode::FOUND);
    }
    assert!(shard(&server).actor_id().is_none(), "shard still down");

    let server = server.restart(extra).await;
    assert_eq!(server.click_count(&key, "dead").await, 10);
    let clicks = server
        .get("/v1/links/dead/clicks?limit=100", Some(&key))
        .await;
    assert_eq!(clicks.status, StatusCode::OK, "{:?}", clicks.body);
    assert_eq!(clicks.body["items"].as_array().map(Vec::len), Some(4));
}

const WEBHOOKS: &str = "[webhooks]\nallow_private_targets = true\n";
const FAILING: &str = "relurl_webhook_endpoints_failing";

/// A server with one endpoint whose actor is out of restart budget; returns
/// the endpoint id, once the failing gauge has counted it.
async fn failing_endpoint(window: Duration) -> (TestServer, String, String, f64) {
    let server = with_restart_policy(one_restart_per(window), TestServer::start(WEBHOOKS)).await;
    let key = server.account("acme").await;
    let reply = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.body["id"].as_str().expect("id").to_string();
    let directory = server.running.as_ref().expect("running").directory.clone();
    let uuid = id.parse().expect("uuid");
    let before = metric_value(&server.metrics_text().await, FAILING, "");

    let first = eventually(|| async { endpoint_actor(&directory, uuid) }).await;
    assert!(crash_endpoint(&directory, uuid));
    eventually(|| async { endpoint_actor(&directory, uuid).filter(|a| *a != first) }).await;
    assert!(crash_endpoint(&directory, uuid));
    eventually(|| async {
        let now = metric_value(&server.metrics_text().await, FAILING, "");
        (now == before + 1.0).then_some(())
    })
    .await;
    (server, key, id, before)
}

// One test for both ways back, so no sibling moves this gauge meanwhile.
#[tokio::test]
async fn the_failing_endpoints_gauge_goes_down_on_recovery_and_on_removal() {
    let (server, _, id, before) = failing_endpoint(Duration::from_secs(2)).await;
    let directory = server.running.as_ref().expect("running").directory.clone();
    // The retry after the window brings the actor back.
    eventually(|| async {
        let now = metric_value(&server.metrics_text().await, FAILING, "");
        (now == before).then_some(())
    })
    .await;
    assert!(endpoint_actor(&directory, id.parse().expect("uuid")).is_some());

    let (server, key, id, before) = failing_endpoint(Duration::from_secs(3600)).await;
    let reply = server
        .delete(&format!("/v1/webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let now = metric_value(&server.metrics_text().await, FAILING, "");
    assert_eq!(now, before);
}
