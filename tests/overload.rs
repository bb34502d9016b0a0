//! Overload: a shard flooded past its queue bound sheds click detail, counts what
//! it shed, and still counts every click. Its own test binary, so the metrics it
//! reads are its own.

mod common;

use std::sync::Arc;

use common::{TestServer, metric};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_flooded_shard_sheds_detail_but_keeps_counts() {
    // One shard with room for 16 clicks, drained only every 3 s: a burst of 400
    // overflows it long before the first drain.
    let config = "[redirect]\nshards = 1\nshard_queue_limit = 16\nflush_interval = \"3s\"\n[fraud]\nenabled = false\n";
    let server = Arc::new(TestServer::start(config).await);
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "flood"}),
        )
        .await;
    let shed_before = metric(&server, "relurl_clicks_shed_total").await;

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                assert_eq!(server.visit("/flood", &[]).await.status, StatusCode::FOUND);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let depth = metric(&server, "relurl_clicks_shard_queue_depth").await;
    assert!(depth <= 16.0, "queue depth {depth} past its bound");
    let shed = metric(&server, "relurl_clicks_shed_total").await - shed_before;
    assert!(shed >= 400.0 - 16.0 * 2.0, "only {shed} shed");

    let server = Arc::into_inner(server).expect("sole owner");
    let mut server = server.restart("").await;
    // Every click counted; detail kept for exactly those that were not shed.
    assert_eq!(server.click_count(&key, "flood").await, 400);
    let clicks = server
        .get("/v1/links/flood/clicks?limit=1000", Some(&key))
        .await;
    let detailed = clicks.body["items"].as_array().unwrap().len() as f64;
    assert_eq!(detailed + shed, 400.0);
    server.stop().await;
}
