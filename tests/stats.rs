//! Click analytics over real HTTP: rollups written with the clicks answer the
//! stats routes; the clicks export as CSV; links filter by tag and text; bad
//! parameters are refused by name.

mod common;

use common::TestServer;
use http::StatusCode;
use serde_json::{Value, json};

const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// Loopback is a trusted proxy (tests choose the client address); a redirect
/// answers once its click is durable, rollups included.
const BEHIND_PROXY: &str =
    "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[redirect]\ndurable_ack = true\n";

async fn click(server: &TestServer, code: &str, ua: &str, ip: &str, referrer: Option<&str>) {
    let mut headers = vec![("user-agent", ua), ("x-forwarded-for", ip)];
    if let Some(referrer) = referrer {
        headers.push(("referer", referrer));
    }
    let reply = server.visit(&format!("/{code}"), &headers).await;
    assert_eq!(reply.status, StatusCode::FOUND);
}

fn breakdown(body: &Value, name: &str) -> Vec<(String, u64)> {
    body[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_string(),
                e["clicks"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn stats_count_clicks_by_bucket_and_breakdown() {
    let server = TestServer::start(BEHIND_PROXY).await;
    let key = server.account("acme").await;
    for code in ["s1", "s2"] {
        let body = json!({"destination": "https://example.com", "code": code});
        server.link(&key, body).await;
    }
    click(
        &server,
        "s1",
        ANDROID,
        "8.8.8.8",
        Some("https://news.example.com/a"),
    )
    .await;
    click(
        &server,
        "s1",
        ANDROID,
        "8.8.4.4",
        Some("https://News.Example.com/b"),
    )
    .await;
    click(&server, "s1", DESKTOP, "1.1.1.1", None).await;
    click(&server, "s1", GOOGLEBOT, "127.0.0.9", None).await;
    click(&server, "s2", DESKTOP, "1.1.1.1", Some("https://t.co/x")).await;

    let reply = server.get("/v1/links/s1/stats", Some(&key)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let body = &reply.body;
    assert_eq!(body["code"], "s1");
    assert_eq!(body["interval"], "day");
    assert_eq!(
        (
            body["total"].clone(),
            body["humans"].clone(),
            body["bots"].clone()
        ),
        (json!(4), json!(3), json!(1))
    );
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 31, "30 days back from now, whole days");
    let counts: Vec<u64> = series
        .iter()
        .map(|b| b["clicks"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 4);
    assert!(
        counts.iter().filter(|n| **n == 0).count() >= 29,
        "zero-filled"
    );
    assert!(body["from"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert_eq!(
        breakdown(body, "countries"),
        [("US".into(), 2), ("--".into(), 1), ("AU".into(), 1)]
    );
    assert_eq!(
        breakdown(body, "devices"),
        [
            ("mobile".into(), 2),
            ("bot".into(), 1),
            ("desktop".into(), 1)
        ]
    );
    assert_eq!(breakdown(body, "browsers")[0], ("Chrome".into(), 2));
    assert_eq!(breakdown(body, "os")[0], ("Android".into(), 2));
    assert_eq!(
        breakdown(body, "referrers"),
        [("(direct)".into(), 2), ("news.example.com".into(), 2)]
    );

    let hourly = server
        .get("/v1/links/s1/stats?interval=hour", Some(&key))
        .await;
    assert_eq!(hourly.status, StatusCode::OK);
    let series = hourly.body["series"].as_array().unwrap();
    assert_eq!(series.len(), 49);
    let sum: u64 = series.iter().map(|b| b["clicks"].as_u64().unwrap()).sum();
    assert_eq!(sum, 4);

    let account = server.get("/v1/stats", Some(&key)).await;
    assert_eq!(account.status, StatusCode::OK);
    assert_eq!(account.body["total"], 5);
    assert!(account.body.get("code").is_none());
    assert_eq!(breakdown(&account.body, "referrers").len(), 3);

    // Another account sees neither the link nor the clicks.
    let other = server.account("other").await;
    let hidden = server.get("/v1/links/s1/stats", Some(&other)).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(server.get("/v1/stats", Some(&other)).await.body["total"], 0);

    // Deleting the link takes its stats; a new link on the code starts at zero.
    assert_eq!(
        server.delete("/v1/links/s1", Some(&key)).await.status,
        StatusCode::NO_CONTENT
    );
    let body = json!({"destination": "https://example.com", "code": "s1"});
    server.link(&key, body).await;
    let fresh = server.get("/v1/links/s1/stats", Some(&key)).await;
    assert_eq!(fresh.body["total"], 0);
}

#[tokio::test]
async fn bad_parameters_name_their_field() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "b"}),
        )
        .await;
    let cases = [
        ("/v1/stats?interval=week", "interval"),
        ("/v1/stats?from=yesterday", "from"),
        ("/v1/stats?to=2026-13-01T00:00:00Z", "to"),
        (
            "/v1/stats?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        (
            "/v1/links/b/stats?interval=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from",
        ),
        (
            "/v1/links/b/stats?from=2026-03-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        ("/v1/links/b/clicks?format=xml", "format"),
        ("/v1/links/b/clicks?from=soon", "from"),
        ("/v1/links/b/clicks?format=csv&to=later", "to"),
    ];
    for (path, field) in cases {
        let reply = server.get(path, Some(&key)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.error_field(), field, "{path}");
    }
    let missing = server.get("/v1/links/nope/stats", Some(&key)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn clicks_export_as_csv_and_filter_by_time() {
    let server = TestServer::start(BEHIND_PROXY).await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "x"}),
        )
        .await;
    click(
        &server,
        "x",
        "=HYPERLINK(\"evil\")",
        "8.8.8.8",
        Some("https://a.example/p?q=1,2"),
    )
    .await;
    click(&server, "x", DESKTOP, "1.1.1.1", None).await;

    let reply = server
        .get("/v1/links/x/clicks?format=csv", Some(&key))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=\"x-clicks.csv\"")
    );
    let text = reply.body.as_str().expect("CSV text").to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,ip,country,region,city,device,browser,os,is_bot,referrer_host,referrer,user_agent"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains(",1.1.1.1,AU,"),
        "newest first: {}",
        lines[1]
    );
    assert!(lines[1].ends_with(&format!(",,{DESKTOP}")) || lines[1].contains(DESKTOP));
    assert!(
        lines[2]
            .ends_with(",a.example,\"https://a.example/p?q=1,2\",\"'=HYPERLINK(\"\"evil\"\")\""),
        "{}",
        lines[2]
    );

    let future = "2999-01-01T00:00:00Z";
    let none = server
        .get(
            &format!("/v1/links/x/clicks?format=csv&from={future}"),
            Some(&key),
        )
        .await;
    assert_eq!(
        none.body.as_str().unwrap().lines().count(),
        1,
        "header only"
    );
    let past = "2000-01-01T00:00:00Z";
    let json = server
        .get(
            &format!("/v1/links/x/clicks?from={past}&to={future}"),
            Some(&key),
        )
        .await;
    assert_eq!(json.body["items"].as_array().unwrap().len(), 2);
    let before = server
        .get(&format!("/v1/links/x/clicks?to={past}"), Some(&key))
        .await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(before.body["items"].as_array().unwrap().is_empty());
    assert_eq!(before.body["next_cursor"], json!(null));
}

#[tokio::test]
async fn links_filter_by_tag_and_text_across_pages() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let links = [
        ("launch-a", "https://example.com/spring", vec!["promo"]),
        ("other", "https://example.com/x", vec!["promo"]),
        ("launch-b", "https://example.com/y", vec![]),
        ("zz", "https://example.com/LAUNCH", vec!["promo"]),
    ];
    for (code, destination, tags) in &links {
        let body = json!({"destination": destination, "code": code, "tags": tags});
        server.link(&key, body).await;
    }
    let codes = |reply: &common::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["code"].as_str().unwrap().to_string())
            .collect()
    };
    let both = server.get("/v1/links?tag=promo&q=launch", Some(&key)).await;
    assert_eq!(both.status, StatusCode::OK);
    assert_eq!(codes(&both), ["zz", "launch-a"]);
    let tagged = server.get("/v1/links?tag=promo", Some(&key)).await;
    assert_eq!(codes(&tagged), ["zz", "other", "launch-a"]);
    let none = server.get("/v1/links?tag=prom", Some(&key)).await;
    assert!(codes(&none).is_empty());

    // Paged one link at a time: every match once, in order.
    let mut seen = Vec::new();
    let mut path = "/v1/links?q=LAUNCH&limit=1".to_string();
    for _ in 0..10 {
        let reply = server.get(&path, Some(&key)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        seen.extend(codes(&reply));
        match reply.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/links?q=LAUNCH&limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["zz", "launch-b", "launch-a"]);
}
