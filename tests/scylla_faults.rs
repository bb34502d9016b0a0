//! Store faults on the scylla backend: the CQL server is stopped under a running
//! relurl and started again. Meanwhile redirects keep answering from the cache,
//! clicks and deliveries wait within their bounds, `/readyz` says not ready and
//! the store errors show in the metrics; afterwards everything is written and
//! delivered. Controls the CQL server through `scripts/cql-server.sh`, so it runs
//! only when `RELURL_TEST_SCYLLA_FAULTS=1` (CI, which owns that server).

mod common;

use std::{process::Command, sync::Arc, time::Duration};

use common::{TestServer, cql, receiver};
use http::StatusCode;
use serde_json::json;

fn cql_server(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cql-server.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .env("RELURL_CQL_KEEP_DATA", "1")
        .status()
        .expect("run cql-server.sh");
    assert!(status.success(), "cql-server.sh {action} failed");
}

#[tokio::test]
async fn redirects_survive_a_store_outage_and_nothing_queued_is_lost() {
    let Some(node) = cql::node() else { return };
    if std::env::var("RELURL_TEST_SCYLLA_FAULTS").as_deref() != Ok("1") {
        eprintln!("RELURL_TEST_SCYLLA_FAULTS not set: store fault test skipped");
        return;
    }
    let (store, _) = cql::backend_config(&node);
    let config = format!(
        "{store}[webhooks]\nallow_private_targets = true\nretry_schedule = [\"500ms\", \"1s\", \"2s\", \"4s\", \"8s\", \"16s\", \"30s\"]\n[fraud]\nenabled = false\n[redirect]\ncache_ttl = \"1s\"\n"
    );
    let server = Arc::new(TestServer::start(&config).await);
    let key = server.account("acme").await;
    let sink = receiver::Receiver::start().await;
    server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": sink.url("/"), "events": ["link.clicked"]}),
        )
        .await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com/up", "code": "up"}),
        )
        .await;
    // Warm the cache, and check the pipeline works before the outage.
    assert_eq!(server.visit("/up", &[]).await.status, StatusCode::FOUND);
    sink.wait_for(1, Duration::from_secs(20)).await;

    cql_server("stop");
    let ready = common::eventually(|| async {
        let r = server.get("/readyz", None).await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
    })
    .await;
    assert_eq!(ready.body["status"], "not_ready");
    // Nothing of the driver's error (hosts, addresses) reaches the caller.
    assert_eq!(
        ready.body["reason"], "store unreachable",
        "{:?}",
        ready.body
    );
    // Past the cache TTL the link cannot be re-read: the cached copy answers.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..50 {
        assert_eq!(
            server.visit("/up", &[]).await.status,
            StatusCode::FOUND,
            "redirect failed during the outage"
        );
    }
    let text = server.metrics_text().await;
    assert!(common::metric_value(&text, "relurl_link_cache_stale_answers_total", "") >= 1.0);
    let errors = common::eventually(|| async {
        let text = server.metrics_text().await;
        let n = common::metric_value(
            &text,
            "relurl_store_errors_total",
            "operation=\"record_clicks\"",
        );
        (n >= 1.0).then_some(n)
    })
    .await;
    assert!(errors >= 1.0);
    let text = server.metrics_text().await;
    assert!(
        common::metric_value(&text, "relurl_clicks_shed_total", "") == 0.0,
        "50 clicks fit the queue"
    );

    cql_server("start");
    // Everything queued during the outage is written and delivered.
    sink.wait_until(Duration::from_secs(120), |r| {
        r.iter()
            .map(|x| x.event_id())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 51
    })
    .await;
    let count = common::eventually(|| async {
        let reply = server.get("/v1/links/up", Some(&key)).await;
        (reply.status == StatusCode::OK).then(|| reply.body["click_count"].as_u64().unwrap())
    })
    .await;
    assert_eq!(count, 51);
    assert_eq!(server.get("/readyz", None).await.status, StatusCode::OK);
    let mut server = Arc::into_inner(server).expect("sole owner");
    server.stop().await;
}
