//! The click pipeline over real HTTP: enrichment, forwarded addresses, exact
//! counts, and the fraud detector.

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestServer, mmdb};
use http::StatusCode;
use relurl::events::{Event, EventType};
use serde_json::{Value, json};

const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// Trusts loopback as a proxy, so tests choose the client address with X-Forwarded-For.
const BEHIND_PROXY: &str =
    "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[redirect]\ndurable_ack = true\n";

async fn clicks_of(server: &TestServer, key: &str, code: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/v1/links/{code}/clicks?limit=1000"), Some(key))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn clicks_are_enriched() {
    let server = TestServer::start(BEHIND_PROXY).await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "e"}),
        )
        .await;
    let visits = [
        (
            ANDROID,
            "8.8.8.8",
            "https://t.co/xyz",
            "mobile",
            "Chrome",
            "Android",
            false,
            "US",
            "t.co",
        ),
        (
            IPAD, "1.1.1.1", "", "tablet", "Safari", "iPad", false, "AU", "",
        ),
        (
            DESKTOP,
            "2001:4860:4860::8888",
            "https://News.Example.org:8443/a?b",
            "desktop",
            "Firefox",
            "Linux",
            false,
            "US",
            "news.example.org",
        ),
        (
            GOOGLEBOT,
            "8.8.4.4",
            "",
            "bot",
            "Googlebot",
            "Other",
            true,
            "US",
            "",
        ),
    ];
    for (ua, ip, referrer, ..) in &visits {
        let mut headers = vec![("user-agent", *ua), ("x-forwarded-for", *ip)];
        if !referrer.is_empty() {
            headers.push(("referer", *referrer));
        }
        assert_eq!(server.visit("/e", &headers).await.status, StatusCode::FOUND);
    }
    let clicks = clicks_of(&server, &key, "e").await;
    assert_eq!(clicks.len(), 4);
    // Newest first.
    for (click, (ua, ip, referrer, device, browser, os, bot, country, host)) in
        clicks.iter().zip(visits.iter().rev())
    {
        assert_eq!(click["ip"], *ip, "{click}");
        assert_eq!(click["user_agent"], *ua);
        assert_eq!(click["referrer"], *referrer);
        assert_eq!(click["device"], *device, "{click}");
        assert_eq!(click["browser"], *browser, "{click}");
        assert_eq!(click["os"], *os, "{click}");
        assert_eq!(click["is_bot"], *bot, "{click}");
        assert_eq!(click["location"]["country"], *country, "{click}");
        if host.is_empty() {
            assert_eq!(click["referrer_host"], json!(null));
        } else {
            assert_eq!(click["referrer_host"], *host);
        }
    }
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start("[redirect]\ndurable_ack = true\n").await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "x"}),
        )
        .await;
    server.visit("/x", &[("x-forwarded-for", "8.8.8.8")]).await;
    let clicks = clicks_of(&server, &key, "x").await;
    assert_eq!(clicks[0]["ip"], "127.0.0.1");
    assert_eq!(clicks[0]["location"], json!({}));
}

#[tokio::test]
async fn a_maxmind_database_gives_region_and_city() {
    let dir = tempfile::tempdir().unwrap();
    let mmdb = dir.path().join("test-city.mmdb");
    mmdb::write(
        &mmdb,
        "81.2.69.0".parse().unwrap(),
        24,
        "GB",
        "ENG",
        "London",
    );
    let server = TestServer::start(&format!(
        "{BEHIND_PROXY}[enrich]\ngeoip_mmdb = \"{}\"\n",
        mmdb.display()
    ))
    .await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "geo"}),
        )
        .await;
    server
        .visit("/geo", &[("x-forwarded-for", "81.2.69.160")])
        .await;
    server
        .visit("/geo", &[("x-forwarded-for", "8.8.8.8")])
        .await;
    let clicks = clicks_of(&server, &key, "geo").await;
    // Not in the database: the built-in country table still answers.
    assert_eq!(clicks[0]["location"], json!({"country": "US"}));
    assert_eq!(
        clicks[1]["location"],
        json!({"country": "GB", "region": "ENG", "city": "London"})
    );
}

#[tokio::test]
async fn counts_are_exact_across_a_graceful_restart() {
    // No durable_ack: the graceful stop must flush what is buffered. One client
    // address sends it all, so the fraud detector is off for this test.
    let server =
        TestServer::start("[redirect]\nflush_interval = \"50ms\"\n[fraud]\nenabled = false\n")
            .await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "n"}),
        )
        .await;
    let server = Arc::new(server);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                assert_eq!(server.visit("/n", &[]).await.status, StatusCode::FOUND);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let server = Arc::into_inner(server).expect("no other owner");
    let mut server = server.restart("").await;
    assert_eq!(server.click_count(&key, "n").await, 400);
    assert_eq!(clicks_of(&server, &key, "n").await.len(), 400);
    server.stop().await;
}

async fn next_fraud_event(
    events: &mut tokio::sync::broadcast::Receiver<Arc<Event>>,
    code: &str,
) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("bus open");
            if event.event_type == EventType::LinkUpdated
                && event.data()["reason"] == "fraud"
                && event.data()["link"]["code"] == code
            {
                return event;
            }
        }
    })
    .await
    .expect("fraud event within 20s")
}

/// One shard, so clicks reach the detector in the order they were made; a
/// flood disables the link (the default only blocks the range: tests/fraud.rs).
const FRAUD: &str = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[redirect]\ndurable_ack = true\nshards = 1\n[fraud]\npolicy = \"disable_link\"\n";

async fn hammer(server: &Arc<TestServer>, code: &str, addresses: Vec<String>) {
    let mut tasks = Vec::new();
    for chunk in addresses.chunks(addresses.len().div_ceil(8)) {
        let server = server.clone();
        let path = format!("/{code}");
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for ip in chunk {
                let status = server
                    .visit(&path, &[("x-forwarded-for", &ip)])
                    .await
                    .status;
                assert!(
                    status == StatusCode::FOUND || status == StatusCode::GONE,
                    "{status}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn one_range_hammering_a_link_disables_it() {
    let server = Arc::new(TestServer::start(FRAUD).await);
    let key = server.account("acme").await;
    let mut events = server.running.as_ref().unwrap().events.subscribe();
    for code in ["target", "bystander", "spread"] {
        server
            .link(
                &key,
                json!({"destination": "https://example.com", "code": code}),
            )
            .await;
    }

    // The same range on another link, below the threshold: stays enabled.
    hammer(
        &server,
        "bystander",
        (0..150).map(|i| format!("203.0.113.{}", i % 250)).collect(),
    )
    .await;
    // The same volume spread over 300 /24s: no range crosses the threshold.
    hammer(
        &server,
        "spread",
        (0..300)
            .map(|i| format!("198.{}.{}.9", 18 + i / 250, i % 250))
            .collect(),
    )
    .await;
    // 300 clicks from one /24.
    hammer(
        &server,
        "target",
        (0..300).map(|i| format!("203.0.113.{}", i % 250)).collect(),
    )
    .await;

    let event = next_fraud_event(&mut events, "target").await;
    assert_eq!(
        event.data()["changes"],
        json!([{"field": "disabled", "old": false, "new": true},
               {"field": "disabled_reason", "old": null, "new": "fraud"}])
    );
    assert_eq!(server.visit("/target", &[]).await.status, StatusCode::GONE);
    let link = server.get("/v1/links/target", Some(&key)).await;
    assert_eq!(link.body["disabled"], true);
    assert_eq!(link.body["disabled_reason"], "fraud");

    let incidents = server.get("/v1/fraud/incidents", Some(&key)).await;
    let items = incidents.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["code"], "target");
    assert_eq!(items[0]["ip_range"], "203.0.113.0/24");
    assert_eq!(items[0]["clicks"], 201);
    assert_eq!(items[0]["window_secs"], 10);
    assert_eq!(items[0]["action"], "disable_link");

    // One shard and FIFO hand-off: everything before the trip has been judged.
    for code in ["bystander", "spread"] {
        assert_eq!(
            server.visit(&format!("/{code}"), &[]).await.status,
            StatusCode::FOUND,
            "{code}"
        );
    }

    // Re-enabled by its owner: a fresh window, not an instant re-trip.
    let reenabled = server
        .patch("/v1/links/target", Some(&key), json!({"disabled": false}))
        .await;
    assert_eq!(reenabled.body["disabled_reason"], json!(null));
    hammer(
        &server,
        "target",
        (0..10).map(|i| format!("203.0.113.{i}")).collect(),
    )
    .await;
    assert_eq!(server.visit("/target", &[]).await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn ipv6_clicks_group_by_48() {
    let server = Arc::new(TestServer::start(FRAUD).await);
    let key = server.account("acme").await;
    let mut events = server.running.as_ref().unwrap().events.subscribe();
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "v6"}),
        )
        .await;
    // Different /64s, one /48.
    hammer(
        &server,
        "v6",
        (0..300)
            .map(|i| format!("2001:db8:1:{i:x}::{:x}", i + 1))
            .collect(),
    )
    .await;
    next_fraud_event(&mut events, "v6").await;
    let incidents = server.get("/v1/fraud/incidents", Some(&key)).await;
    assert_eq!(incidents.body["items"][0]["ip_range"], "2001:db8:1::/48");
    assert_eq!(server.visit("/v6", &[]).await.status, StatusCode::GONE);
}
