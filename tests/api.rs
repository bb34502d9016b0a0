//! The link API and redirects over real HTTP against a real server.

mod common;

use bytes::Bytes;
use common::{ADMIN, TestServer};
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn only_the_admin_creates_accounts() {
    let server = TestServer::start("").await;
    let no_token = server
        .post("/v1/accounts", None, json!({"name": "a"}))
        .await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.error_code(), "unauthorized");
    let wrong = server
        .post("/v1/accounts", Some("nope"), json!({"name": "a"}))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let created = server
        .post("/v1/accounts", Some(ADMIN), json!({"name": "acme"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "acme");
    assert!(created.body["id"].is_string());
    let key = created.body["api_key"].as_str().unwrap().to_string();

    let by_account = server
        .post("/v1/accounts", Some(&key), json!({"name": "b"}))
        .await;
    assert_eq!(by_account.status, StatusCode::FORBIDDEN);
    // The admin token is for accounts only.
    let admin_link = server
        .post(
            "/v1/links",
            Some(ADMIN),
            json!({"destination": "https://example.com"}),
        )
        .await;
    assert_eq!(admin_link.status, StatusCode::FORBIDDEN);
    let bad_name = server
        .post("/v1/accounts", Some(ADMIN), json!({"name": ""}))
        .await;
    assert_eq!(bad_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_name.error_field(), "name");
}

#[tokio::test]
async fn link_crud() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;

    let created = server
        .link(
            &key,
            json!({"destination": "https://example.com/a", "tags": ["x", "y"]}),
        )
        .await;
    let code = created["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 7);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        created["short_url"],
        format!("http://127.0.0.1:8080/{code}")
    );
    assert_eq!(created["redirect_status"], 302);
    assert_eq!(created["disabled"], false);
    assert_eq!(created["disabled_reason"], json!(null));
    assert_eq!(created["expires_at"], json!(null));
    assert_eq!(created["tags"], json!(["x", "y"]));
    assert_eq!(created["click_count"], 0);
    for field in ["created_at", "updated_at"] {
        assert!(created[field].as_str().unwrap().ends_with('Z'), "{field}");
    }

    let custom = server
        .link(&key, json!({"destination": "https://example.com/b", "code": "my-link_1", "redirect_status": 301}))
        .await;
    assert_eq!(custom["code"], "my-link_1");

    let read = server.get(&format!("/v1/links/{code}"), Some(&key)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["destination"], "https://example.com/a");

    let patched = server
        .patch(
            &format!("/v1/links/{code}"),
            Some(&key),
            json!({"destination": "https://example.org/new", "tags": [], "redirect_status": 307}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["destination"], "https://example.org/new");
    assert_eq!(patched.body["redirect_status"], 307);
    assert_eq!(patched.body["tags"], json!([]));
    // The redirect follows the change at once (cache invalidated).
    let visit = server.visit(&format!("/{code}"), &[]).await;
    assert_eq!(visit.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(visit.header("location"), Some("https://example.org/new"));

    let deleted = server
        .delete(&format!("/v1/links/{code}"), Some(&key))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server
            .get(&format!("/v1/links/{code}"), Some(&key))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.visit(&format!("/{code}"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn listing_pages_newest_first() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let other = server.account("other").await;
    for i in 0..5 {
        server
            .link(
                &key,
                json!({"destination": "https://example.com", "code": format!("l{i}")}),
            )
            .await;
        // Distinct creation milliseconds make the order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    server
        .link(
            &other,
            json!({"destination": "https://example.com", "code": "theirs"}),
        )
        .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/links?limit=2&cursor={c}"),
            None => "/v1/links?limit=2".to_string(),
        };
        let page = server.get(&path, Some(&key)).await;
        assert_eq!(page.status, StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|l| l["code"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["l4", "l3", "l2", "l1", "l0"]);

    let bad_limit = server.get("/v1/links?limit=0", Some(&key)).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_limit.error_field(), "limit");
    let bad_cursor = server.get("/v1/links?cursor=@@@", Some(&key)).await;
    assert_eq!(bad_cursor.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_cursor.error_field(), "cursor");
}

#[tokio::test]
async fn redirects_use_each_status_and_merge_queries() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    for status in [301u16, 302, 307, 308] {
        let code = format!("s{status}");
        server
            .link(&key, json!({"destination": "https://example.com/p?src=a", "code": code, "redirect_status": status}))
            .await;
        let reply = server.visit(&format!("/{code}"), &[]).await;
        assert_eq!(reply.status.as_u16(), status);
        assert_eq!(
            reply.header("location"),
            Some("https://example.com/p?src=a")
        );
        assert_eq!(reply.header("cache-control"), Some("private, max-age=0"));
        let with_query = server.visit(&format!("/{code}?utm=x&b=2"), &[]).await;
        assert_eq!(
            with_query.header("location"),
            Some("https://example.com/p?src=a&utm=x&b=2")
        );
    }
    server
        .link(
            &key,
            json!({"destination": "https://example.com/plain#top", "code": "plain"}),
        )
        .await;
    let reply = server.visit("/plain?q=1", &[]).await;
    assert_eq!(
        reply.header("location"),
        Some("https://example.com/plain?q=1#top")
    );
    let head = server.raw(Method::HEAD, "/plain", None, &[], None).await;
    assert_eq!(head.status, StatusCode::FOUND);
    assert_eq!(
        head.header("location"),
        Some("https://example.com/plain#top")
    );
}

#[tokio::test]
async fn unknown_disabled_and_expired_links() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let unknown = server.visit("/nosuchcode", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "not_found");

    // An expiry already past is refused (input_validation.rs); a near one passes.
    let near = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "old", "expires_at": near}),
        )
        .await;
    common::eventually(|| async {
        (server.visit("/old", &[]).await.status == StatusCode::GONE).then_some(())
    })
    .await;

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "soon", "expires_at": future}),
        )
        .await;
    assert_eq!(server.visit("/soon", &[]).await.status, StatusCode::FOUND);
    // Expiry moves, written back in UTC.
    let moved = server
        .patch(
            "/v1/links/soon",
            Some(&key),
            json!({"expires_at": "2999-06-01T12:00:00+02:00"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.body["expires_at"], "2999-06-01T10:00:00.000Z");
    assert_eq!(server.visit("/soon", &[]).await.status, StatusCode::FOUND);
    let cleared = server
        .patch("/v1/links/soon", Some(&key), json!({"expires_at": null}))
        .await;
    assert_eq!(cleared.body["expires_at"], json!(null));
    assert_eq!(server.visit("/soon", &[]).await.status, StatusCode::FOUND);

    let disabled = server
        .patch("/v1/links/soon", Some(&key), json!({"disabled": true}))
        .await;
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(server.visit("/soon", &[]).await.status, StatusCode::GONE);
    server
        .patch("/v1/links/soon", Some(&key), json!({"disabled": false}))
        .await;
    assert_eq!(server.visit("/soon", &[]).await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn an_account_never_sees_another_accounts_links() {
    let server = TestServer::start("").await;
    let a = server.account("a").await;
    let b = server.account("b").await;
    server
        .link(
            &a,
            json!({"destination": "https://example.com", "code": "mine"}),
        )
        .await;

    for reply in [
        server.get("/v1/links/mine", Some(&b)).await,
        server
            .patch("/v1/links/mine", Some(&b), json!({"disabled": true}))
            .await,
        server.delete("/v1/links/mine", Some(&b)).await,
        server.get("/v1/links/mine/clicks", Some(&b)).await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    }
    let listing = server.get("/v1/links", Some(&b)).await;
    assert_eq!(listing.body["items"], json!([]));
    // Still there and unchanged for its owner.
    let mine = server.get("/v1/links/mine", Some(&a)).await;
    assert_eq!(mine.body["disabled"], false);
    // Codes are global: B cannot take A's code either.
    let taken = server
        .post(
            "/v1/links",
            Some(&b),
            json!({"destination": "https://example.com", "code": "mine"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.error_field(), "code");

    let wrong = server.get("/v1/links", Some("rl_not-a-key")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let none = server.get("/v1/links", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let garbled = server
        .raw(
            Method::GET,
            "/v1/links",
            None,
            &[("authorization", "Basic abc")],
            None,
        )
        .await;
    assert_eq!(garbled.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let server = TestServer::start("[server]\nmax_body_bytes = 2048\n").await;
    let key = server.account("acme").await;
    let cases = [
        (
            json!({"destination": "ftp://example.com"}),
            422,
            "destination",
        ),
        (json!({"destination": "/relative"}), 422, "destination"),
        (
            json!({"destination": format!("https://e.com/{}", "a".repeat(8200))}),
            413,
            "",
        ),
        (
            json!({"destination": "https://example.com", "code": "has space"}),
            422,
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "a".repeat(65)}),
            422,
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "metrics"}),
            422,
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "v1"}),
            422,
            "code",
        ),
        (
            json!({"destination": "https://example.com", "redirect_status": 200}),
            422,
            "redirect_status",
        ),
        (
            json!({"destination": "https://example.com", "expires_at": "tomorrow"}),
            422,
            "expires_at",
        ),
        (
            json!({"destination": "https://example.com", "tags": "x"}),
            422,
            "tags",
        ),
        (
            json!({"destination": "https://example.com", "colour": "red"}),
            422,
            "colour",
        ),
        (json!({"code": "abc"}), 422, "destination"),
        (json!({"destination": 5}), 422, "destination"),
    ];
    for (body, status, field) in cases {
        let reply = server.post("/v1/links", Some(&key), body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {:?}", reply.body);
        assert!(
            reply.body["error"]["message"].is_string(),
            "{:?}",
            reply.body
        );
        if !field.is_empty() {
            assert_eq!(reply.error_field(), field, "{body}: {:?}", reply.body);
        }
    }
    // 8 KiB destinations are refused by validation when the body limit allows them.
    let roomy = TestServer::start("").await;
    let key2 = roomy.account("acme").await;
    let long = roomy
        .post(
            "/v1/links",
            Some(&key2),
            json!({"destination": format!("https://e.com/{}", "a".repeat(8200))}),
        )
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(long.error_field(), "destination");

    let malformed = server
        .raw(
            Method::POST,
            "/v1/links",
            Some(&key),
            &[],
            Some(Bytes::from_static(b"{\"destination\": ")),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "malformed_request");
    let not_object = server
        .raw(
            Method::POST,
            "/v1/links",
            Some(&key),
            &[],
            Some(Bytes::from_static(b"[1,2]")),
        )
        .await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);

    let unknown_route = server.get("/v1/nothing", Some(&key)).await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_route.error_code(), "not_found");
    let wrong_method = server
        .raw(Method::PUT, "/v1/links", Some(&key), &[], None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");

    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "dup"}),
        )
        .await;
    let dup = server
        .post(
            "/v1/links",
            Some(&key),
            json!({"destination": "https://example.com", "code": "dup"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad_patch = server
        .patch("/v1/links/dup", Some(&key), json!({"redirect_status": 404}))
        .await;
    assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_patch.error_field(), "redirect_status");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start("").await;
    assert_eq!(server.get("/healthz", None).await.status, StatusCode::OK);
    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");

    let key = server.account("acme").await;
    // Each must rise by at least one (not exactly: the recorder is shared with
    // the other tests of this binary).
    let series = [
        "relurl_link_cache_lookups_total{result=\"hit\"}",
        "relurl_link_cache_lookups_total{result=\"miss\"}",
        "relurl_http_requests_total{route=\"/v1/links\",status=\"201\"}",
    ];
    let mut before = Vec::new();
    for name in series {
        before.push(common::metric(&server, name).await);
    }
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "m"}),
        )
        .await;
    server.visit("/m", &[]).await;
    server.visit("/m", &[]).await;
    server.visit("/missing-one", &[]).await;
    let text = server.metrics_text().await;
    for name in [
        "relurl_http_requests_total",
        "relurl_redirect_latency_seconds_bucket",
        "relurl_redirect_responses_total",
        "relurl_link_cache_lookups_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    for (name, before) in series.into_iter().zip(before) {
        let delta = common::metric(&server, name).await - before;
        assert!(delta >= 1.0, "{name} rose by {delta}");
    }
}

#[tokio::test]
async fn restart_keeps_links_keys_and_counts() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com/kept", "code": "kept"}),
        )
        .await;
    for _ in 0..7 {
        assert_eq!(server.visit("/kept", &[]).await.status, StatusCode::FOUND);
    }
    let server = server.restart("").await;
    let visit = server.visit("/kept", &[]).await;
    assert_eq!(visit.status, StatusCode::FOUND);
    assert_eq!(visit.header("location"), Some("https://example.com/kept"));
    // The key still works, and every click before the graceful stop was counted.
    let mut server = server.restart("").await;
    assert_eq!(server.click_count(&key, "kept").await, 8);
    server.stop().await;
}

#[tokio::test]
async fn redirects_and_the_api_speak_http2() {
    use http_body_util::{BodyExt, Full};
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com/h2", "code": "h2"}),
        )
        .await;
    // Prior-knowledge HTTP/2 (h2c), as a proxy in front of relurl would speak it.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let redirect = client
        .request(
            http::Request::get(server.url("/h2"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect("h2 request");
    assert_eq!(redirect.version(), http::Version::HTTP_2);
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_eq!(redirect.headers()["location"], "https://example.com/h2");
    let api = client
        .request(
            http::Request::get(server.url("/v1/links/h2"))
                .header("authorization", format!("Bearer {key}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect("h2 request");
    assert_eq!(api.version(), http::Version::HTTP_2);
    assert_eq!(api.status(), StatusCode::OK);
    let body = api.into_body().collect().await.unwrap().to_bytes();
    let link: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(link["code"], "h2");
}
