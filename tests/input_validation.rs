//! Hostile input over real HTTP: every refusal is a 4xx in the JSON error shape
//! naming the field or parameter at fault.

mod common;

use common::{ADMIN, Reply, TestServer};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// Private targets allowed, so webhook URLs need no DNS.
const PRIVATE_OK: &str = "[webhooks]\nallow_private_targets = true\n";

#[track_caller]
fn refused(reply: &Reply, status: StatusCode, field: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.error_field(), field, "{:?}", reply.body);
    assert!(
        reply.body["error"]["message"].is_string(),
        "JSON error shape: {:?}",
        reply.body
    );
}

/// Sends `body` with `method` and expects a 422 naming `field`.
async fn refuses(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
    field: &str,
) -> Reply {
    let reply = server.call(method, path, Some(key), Some(body)).await;
    refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, field);
    reply
}

async fn endpoint(server: &TestServer, key: &str, body: Value) -> String {
    let reply = server.post("/v1/webhooks", Some(key), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn destination_ports_out_of_range_are_refused() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    for port in ["99999999999", "65536", "70000", "0"] {
        let destination = format!("https://a.example:{port}/");
        let reply = refuses(
            &server,
            Method::POST,
            "/v1/links",
            &key,
            json!({ "destination": destination }),
            "destination",
        )
        .await;
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("port")
        );
    }
    server
        .link(
            &key,
            json!({"destination": "https://a.example:8443/", "code": "p"}),
        )
        .await;
    for port in ["65536", "70000", "99999999999"] {
        let destination = format!("https://a.example:{port}/");
        refuses(
            &server,
            Method::PATCH,
            "/v1/links/p",
            &key,
            json!({ "destination": destination }),
            "destination",
        )
        .await;
    }
}

#[tokio::test]
async fn webhook_url_ports_out_of_range_are_refused() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    for url in ["http://8.8.8.8:65536/", "http://8.8.8.8:0/"] {
        refuses(
            &server,
            Method::POST,
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["*"]}),
            "url",
        )
        .await;
    }
    let id = endpoint(
        &server,
        &key,
        json!({"url": "http://8.8.8.8:8080/", "events": ["*"]}),
    )
    .await;
    refuses(
        &server,
        Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        &key,
        json!({"url": "http://8.8.8.8:65536/"}),
        "url",
    )
    .await;
}

#[tokio::test]
async fn expires_at_must_be_strict_rfc3339() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    server
        .link(&key, json!({"destination": "https://e.com/", "code": "t"}))
        .await;
    for at in [
        "+10000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "2099-06-30T23:59:60Z",
    ] {
        refuses(
            &server,
            Method::POST,
            "/v1/links",
            &key,
            json!({"destination": "https://e.com/", "expires_at": at}),
            "expires_at",
        )
        .await;
        refuses(
            &server,
            Method::PATCH,
            "/v1/links/t",
            &key,
            json!({ "expires_at": at }),
            "expires_at",
        )
        .await;
    }
    let fine = server
        .patch(
            "/v1/links/t",
            Some(&key),
            json!({"expires_at": "9999-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{:?}", fine.body);
    let cleared = server
        .patch("/v1/links/t", Some(&key), json!({"expires_at": null}))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{:?}", cleared.body);
    assert_eq!(cleared.body["expires_at"], Value::Null);
}

#[tokio::test]
async fn expires_at_in_the_past_is_refused() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let past = "2001-01-01T00:00:00Z";
    refuses(
        &server,
        Method::POST,
        "/v1/links",
        &key,
        json!({"destination": "https://e.com/", "code": "old", "expires_at": past}),
        "expires_at",
    )
    .await;
    // Nothing was made.
    assert_eq!(
        server.visit("/old", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    server
        .link(&key, json!({"destination": "https://e.com/", "code": "t"}))
        .await;
    refuses(
        &server,
        Method::PATCH,
        "/v1/links/t",
        &key,
        json!({ "expires_at": past }),
        "expires_at",
    )
    .await;
    assert_eq!(server.visit("/t", &[]).await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn tags_are_deduplicated_and_plain() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    let created = server
        .link(
            &key,
            json!({"destination": "https://e.com/", "code": "t", "tags": ["b", "a", "b", "a"]}),
        )
        .await;
    assert_eq!(created["tags"], json!(["b", "a"]));
    let patched = server
        .patch("/v1/links/t", Some(&key), json!({"tags": ["z", "z", "y"]}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["tags"], json!(["z", "y"]));
    for bad in ["a\u{0}b", "a\nb", "\u{7}", "\u{202E}fdp.exe", "\u{2066}x"] {
        refuses(
            &server,
            Method::POST,
            "/v1/links",
            &key,
            json!({"destination": "https://e.com/", "tags": [bad]}),
            "tags",
        )
        .await;
        refuses(
            &server,
            Method::PATCH,
            "/v1/links/t",
            &key,
            json!({ "tags": [bad] }),
            "tags",
        )
        .await;
    }
}

#[tokio::test]
async fn names_and_descriptions_refuse_control_and_bidi_characters() {
    let server = TestServer::start(PRIVATE_OK).await;
    let key = server.account("acme").await;
    let id = endpoint(
        &server,
        &key,
        json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
    )
    .await;
    for bad in ["a\u{0}b", "line\nbreak", "\u{202E}evil", "\u{200F}x"] {
        let account = server
            .post("/v1/accounts", Some(ADMIN), json!({ "name": bad }))
            .await;
        refused(&account, StatusCode::UNPROCESSABLE_ENTITY, "name");
        refuses(
            &server,
            Method::POST,
            "/v1/webhooks",
            &key,
            json!({"url": "http://127.0.0.1:9/", "events": ["*"], "description": bad}),
            "description",
        )
        .await;
        refuses(
            &server,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            &key,
            json!({ "description": bad }),
            "description",
        )
        .await;
    }
}

#[tokio::test]
async fn webhook_events_are_known_deduplicated_and_capped() {
    let server = TestServer::start(PRIVATE_OK).await;
    let key = server.account("acme").await;
    let url = "http://127.0.0.1:9/";
    let created = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": url, "events": ["link.clicked", "link.created", "link.clicked"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(
        created.body["events"],
        json!(["link.clicked", "link.created"])
    );
    let id = created.body["id"].as_str().unwrap().to_string();

    let many_stars = vec!["*"; 10_000];
    refuses(
        &server,
        Method::POST,
        "/v1/webhooks",
        &key,
        json!({"url": url, "events": many_stars}),
        "events",
    )
    .await;
    refuses(
        &server,
        Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        &key,
        json!({ "events": many_stars }),
        "events",
    )
    .await;
    refuses(
        &server,
        Method::POST,
        "/v1/webhooks",
        &key,
        json!({"url": url, "events": ["link.clicked", "link.exploded"]}),
        "events",
    )
    .await;

    let stars = server
        .patch(
            &format!("/v1/webhooks/{id}"),
            Some(&key),
            json!({"events": ["*", "link.clicked", "*"]}),
        )
        .await;
    assert_eq!(stars.status, StatusCode::OK, "{:?}", stars.body);
    assert_eq!(stars.body["events"], json!(["*"]));
    let read = server.get(&format!("/v1/webhooks/{id}"), Some(&key)).await;
    assert_eq!(read.body["events"], json!(["*"]));
}

#[tokio::test]
async fn webhook_url_over_the_limit_says_it_is_too_long() {
    let server = TestServer::start(PRIVATE_OK).await;
    let key = server.account("acme").await;
    let url = format!("http://127.0.0.1:9/{}", "a".repeat(2100));
    let reply = refuses(
        &server,
        Method::POST,
        "/v1/webhooks",
        &key,
        json!({"url": url, "events": ["*"]}),
        "url",
    )
    .await;
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("too long") && message.contains("2048"),
        "{message}"
    );
}

/// Every list route of one account that has a link and an endpoint.
async fn list_routes(server: &TestServer, key: &str) -> Vec<String> {
    server
        .link(key, json!({"destination": "https://e.com/", "code": "l"}))
        .await;
    let id = endpoint(
        server,
        key,
        json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
    )
    .await;
    vec![
        "/v1/links".into(),
        "/v1/links/l/clicks".into(),
        "/v1/fraud/incidents".into(),
        "/v1/webhooks".into(),
        format!("/v1/webhooks/{id}/deliveries"),
    ]
}

#[tokio::test]
async fn duplicated_query_parameters_are_json_400s() {
    let server = TestServer::start(PRIVATE_OK).await;
    let key = server.account("acme").await;
    for route in list_routes(&server, &key).await {
        let reply = server
            .get(&format!("{route}?limit=2&limit=3"), Some(&key))
            .await;
        refused(&reply, StatusCode::BAD_REQUEST, "limit");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{route}"
        );
    }
}

#[tokio::test]
async fn a_bad_limit_is_refused_on_every_list() {
    let server = TestServer::start(PRIVATE_OK).await;
    let key = server.account("acme").await;
    for route in list_routes(&server, &key).await {
        for limit in ["abc", "0", "-1", "1001"] {
            let reply = server
                .get(&format!("{route}?limit={limit}"), Some(&key))
                .await;
            refused(&reply, StatusCode::BAD_REQUEST, "limit");
        }
    }
}

#[tokio::test]
async fn made_up_cursors_are_refused_on_every_list() {
    let server = TestServer::start(PRIVATE_OK).await;
    let key = server.account("acme").await;
    let routes = list_routes(&server, &key).await;
    for route in &routes {
        for cursor in ["AAAA", "@@@", "AAAAAAAAAAAAAAAAAAAA"] {
            let reply = server
                .get(&format!("{route}?cursor={cursor}"), Some(&key))
                .await;
            refused(&reply, StatusCode::BAD_REQUEST, "cursor");
        }
    }
    // A real cursor works; with anything appended it does not.
    server
        .link(&key, json!({"destination": "https://e.com/", "code": "m"}))
        .await;
    endpoint(
        &server,
        &key,
        json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
    )
    .await;
    for route in ["/v1/links", "/v1/webhooks"] {
        let first = server.get(&format!("{route}?limit=1"), Some(&key)).await;
        assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
        let cursor = first.body["next_cursor"].as_str().expect("a next page");
        let second = server
            .get(&format!("{route}?limit=1&cursor={cursor}"), Some(&key))
            .await;
        assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
        assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
        assert_ne!(first.body["items"][0], second.body["items"][0]);
        assert_eq!(second.body["next_cursor"], Value::Null);
        for junk in ["A", "AAAA", "xyz"] {
            let reply = server
                .get(&format!("{route}?cursor={cursor}{junk}"), Some(&key))
                .await;
            refused(&reply, StatusCode::BAD_REQUEST, "cursor");
        }
    }
}
