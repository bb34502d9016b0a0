//! Rate limits on `/v1`: failed auth throttled per client before any key
//! lookup, per-account limits with `Retry-After`, and `WWW-Authenticate` on 401.

mod common;

use common::{TestServer, metric};
use http::{Method, StatusCode};
use serde_json::json;

const LOOKUPS_UNKNOWN: &str = "relurl_http_auth_key_lookups_total{outcome=\"unknown\"}";

#[tokio::test]
async fn a_thousand_failed_auths_from_one_client_get_429_without_store_lookups() {
    // Behind a trusted proxy: clients are told apart by X-Forwarded-For.
    let server = TestServer::start("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    let key = server.account("victim").await;
    let attacker = [("x-forwarded-for", "203.0.113.9")];
    let before = metric(&server, LOOKUPS_UNKNOWN).await;
    let (mut unauthorized, mut limited) = (0, 0);
    for i in 0..1000 {
        let guess = format!("rl_guess{i:05}");
        let reply = server
            .raw(Method::GET, "/v1/links", Some(&guess), &attacker, None)
            .await;
        match reply.status {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(reply.error_code(), "rate_limited");
                let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
            }
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    let lookups = metric(&server, LOOKUPS_UNKNOWN).await - before;
    eprintln!("1000 failed auths: {unauthorized} × 401, {limited} × 429, {lookups} key lookups");
    // The default quota is 30 a minute (also the burst); a slow machine refills a few.
    assert!(unauthorized <= 40, "{unauthorized} answered 401");
    assert!(limited >= 960, "only {limited} answered 429");
    assert!(
        lookups <= 45.0,
        "{lookups} key lookups for 1000 failed attempts: throttled ones must not read the store"
    );

    // The throttled client is refused even with a valid key; others are not.
    let with_key = server
        .raw(Method::GET, "/v1/links", Some(&key), &attacker, None)
        .await;
    assert_eq!(with_key.status, StatusCode::TOO_MANY_REQUESTS);
    let other = [("x-forwarded-for", "198.51.100.7")];
    let reply = server
        .raw(Method::GET, "/v1/links", Some(&key), &other, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = server
        .raw(Method::GET, "/v1/links", Some("rl_nope"), &other, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_credentials_count_as_failed_auth_too() {
    let server = TestServer::start("[auth]\nfailed_auth_per_min = 3\n").await;
    for _ in 0..3 {
        assert_eq!(
            server.get("/v1/links", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let reply = server.get("/v1/links", None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.header("retry-after").is_some());
}

#[tokio::test]
async fn an_account_over_its_rate_gets_429_with_retry_after() {
    let server = TestServer::start("[auth]\nrequests_per_sec = 1\nburst = 3\n").await;
    let key = server.account("busy").await;
    let other = server.account("quiet").await;
    for _ in 0..3 {
        assert_eq!(
            server.get("/v1/links", Some(&key)).await.status,
            StatusCode::OK
        );
    }
    let reply = server.get("/v1/links", Some(&key)).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.error_code(), "rate_limited");
    // Another account has its own quota.
    assert_eq!(
        server.get("/v1/links", Some(&other)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expensive_writes_have_a_stricter_limit() {
    let server =
        TestServer::start("[auth]\nexpensive_writes_per_sec = 1\nexpensive_writes_burst = 2\n")
            .await;
    let key = server.account("writer").await;
    for i in 0..2 {
        server
            .link(
                &key,
                json!({"destination": "https://example.com", "code": format!("w{i}")}),
            )
            .await;
    }
    let reply = server
        .post(
            "/v1/links",
            Some(&key),
            json!({"destination": "https://example.com"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.header("retry-after").is_some());
    // Reads are not expensive.
    assert_eq!(
        server.get("/v1/links", Some(&key)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unauthorized_answers_ask_for_a_bearer_token() {
    let server = TestServer::start("").await;
    for reply in [
        server.get("/v1/links", None).await,
        server.get("/v1/links", Some("rl_wrong")).await,
        server
            .post("/v1/accounts", Some("wrong"), json!({"name": "x"}))
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.error_code(), "unauthorized");
    }
}
