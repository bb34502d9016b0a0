//! Webhook recovery and live clicks against a real relurl: recover re-sends
//! exactly the failed deliveries of its window to a loopback receiver; click
//! streams (server-sent events) carry the account's stored clicks, opened with
//! the API key or a stream token, capped per account, and drop slow readers.

mod common;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use chrono::Utc;
use common::{
    TestServer,
    receiver::{Answer, Received, Receiver},
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = "[webhooks]\nallow_private_targets = true\nretry_schedule = [\"50ms\"]\nretry_jitter = 0.0\ntimeout = \"500ms\"\n[redirect]\ndurable_ack = true\nflush_interval = \"2ms\"\n[fraud]\nenabled = false\n";
const WAIT: Duration = Duration::from_secs(30);
const DROPPED: &str = "relurl_http_click_streams_dropped_total";

async fn create_link(server: &TestServer, key: &str, code: &str) {
    server
        .link(
            key,
            json!({"destination": "https://example.com", "code": code}),
        )
        .await;
}

async fn failed_count(server: &TestServer, key: &str, id: &str) -> usize {
    let path = format!("/v1/webhooks/{id}/deliveries?status=failed&limit=100");
    let reply = server.get(&path, Some(key)).await;
    reply.body["items"].as_array().map_or(0, Vec::len)
}

async fn recover(server: &TestServer, key: &str, id: &str, body: Value) -> common::Reply {
    server
        .post(&format!("/v1/webhooks/{id}/recover"), Some(key), body)
        .await
}

/// The link codes of `link.created` deliveries, sorted.
fn codes(received: &[Received]) -> Vec<String> {
    let mut codes: Vec<String> = received
        .iter()
        .map(|r| {
            r.json()["data"]["link"]["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    codes.sort();
    codes
}

#[tokio::test]
async fn recover_resends_exactly_the_failed_deliveries_of_the_window() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_by_default(Answer::Status(503));
    let reply = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": receiver.url("/"), "events": ["link.created"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();

    // Two deliveries before the window, two in it; each fails twice for good.
    let start = Utc::now();
    create_link(&server, &key, "early1").await;
    create_link(&server, &key, "early2").await;
    let since = Utc::now();
    create_link(&server, &key, "late1").await;
    create_link(&server, &key, "late2").await;
    receiver.wait_for(8, WAIT).await;
    common::wait_until(WAIT, "four failed deliveries", || async {
        (failed_count(&server, &key, &id).await == 4).then_some(())
    })
    .await;

    receiver.answer_by_default(Answer::Status(200));
    let reply = recover(&server, &key, &id, json!({"since": since.to_rfc3339()})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"recovered": 2}));
    let got = receiver.wait_for(10, WAIT).await;
    assert_eq!(codes(&got[8..]), ["late1", "late2"]);
    for r in &got[8..] {
        assert_eq!(r.header("x-relurl-delivery-attempt"), "3");
    }

    // The deliveries before the window stayed failed: exactly those come next.
    let window = json!({"since": start.to_rfc3339(), "until": since.to_rfc3339()});
    let reply = recover(&server, &key, &id, window).await;
    assert_eq!(reply.body, json!({"recovered": 2}), "{:?}", reply.body);
    let got = receiver.wait_for(12, WAIT).await;
    assert_eq!(codes(&got[10..]), ["early1", "early2"]);
    // Nothing failed is left once all four were delivered.
    let path = format!("/v1/webhooks/{id}/deliveries?status=succeeded");
    common::wait_until(WAIT, "four succeeded deliveries", || async {
        let reply = server.get(&path, Some(&key)).await;
        (reply.body["items"].as_array().unwrap().len() == 4).then_some(())
    })
    .await;
    let everything = json!({"since": start.to_rfc3339()});
    let reply = recover(&server, &key, &id, everything).await;
    assert_eq!(reply.body, json!({"recovered": 0}));
}

#[tokio::test]
async fn recover_refuses_bad_windows_other_accounts_and_disabled_endpoints() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    let other = server.account("other").await;
    let reply = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    let now = Utc::now();
    let later = (now + chrono::Duration::hours(1)).to_rfc3339();

    for body in [
        json!({"since": later}),
        json!({"since": now.to_rfc3339(), "until": now.to_rfc3339()}),
        json!({"since": "yesterday"}),
        json!({}),
    ] {
        let reply = recover(&server, &key, &id, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.error_field(), "since", "{body}: {:?}", reply.body);
    }
    let hour_ago = json!({"since": (now - chrono::Duration::hours(1)).to_rfc3339()});
    let reply = recover(&server, &other, &id, hour_ago.clone()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let path = format!("/v1/webhooks/{id}");
    let off = server
        .patch(&path, Some(&key), json!({"enabled": false}))
        .await;
    assert_eq!(off.status, StatusCode::OK);
    let reply = recover(&server, &key, &id, hour_ago).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
}

/// An open event stream: its response body, read event by event.
struct Stream {
    body: Incoming,
    buffer: String,
}

impl Stream {
    /// The next event (`event:` name and `data:` JSON); comments come as
    /// `("comment", text)`.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return parse_event(&block);
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("an event within the deadline")
                .expect("the stream is open")
                .expect("the stream reads");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next click event's data, skipping keep-alives.
    async fn click(&mut self) -> Value {
        loop {
            match self.next().await {
                (event, data) if event == "click" => return data,
                (event, _) if event == "comment" => continue,
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
}

fn parse_event(block: &str) -> (String, Value) {
    let mut event = String::new();
    let mut data = Value::Null;
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            return ("comment".into(), Value::String(comment.trim().into()));
        }
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        }
        if let Some(json) = line.strip_prefix("data: ") {
            data = serde_json::from_str(json).unwrap();
        }
    }
    (event, data)
}

/// `GET path` with an optional API key: the status, and the stream when 200.
async fn open(server: &TestServer, path: &str, key: Option<&str>) -> (StatusCode, Option<Stream>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = Request::get(server.url(path));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .expect("stream request");
    let status = response.status();
    if status != StatusCode::OK {
        return (status, None);
    }
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let stream = Stream {
        body: response.into_body(),
        buffer: String::new(),
    };
    (status, Some(stream))
}

async fn click(server: &TestServer, code: &str) {
    let reply = server.visit(&format!("/{code}"), &[]).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{code}");
}

#[tokio::test]
async fn a_stream_carries_the_accounts_clicks_only() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    let other = server.account("other").await;
    create_link(&server, &key, "mine1").await;
    create_link(&server, &key, "mine2").await;
    create_link(&server, &other, "theirs").await;

    let (status, stream) = open(&server, "/v1/clicks/stream", Some(&key)).await;
    assert_eq!(status, StatusCode::OK);
    let mut all = stream.unwrap();
    let (_, only) = open(&server, "/v1/clicks/stream?code=mine2", Some(&key)).await;
    let mut only = only.unwrap();

    // durable_ack: a redirect answers after its click is stored and published,
    // so the other account's click and mine1 come before mine2's.
    click(&server, "theirs").await;
    click(&server, "mine1").await;
    click(&server, "mine2").await;
    let first = all.click().await;
    assert_eq!(first["code"], "mine1");
    assert!(first["id"].is_string() && first["at"].is_string());
    assert!(first["location"].is_object() && first["is_bot"].is_boolean());
    assert_eq!(all.click().await["code"], "mine2");
    assert_eq!(only.click().await["code"], "mine2");

    // The click in the event is the stored one.
    let stored = server.get("/v1/links/mine1/clicks", Some(&key)).await;
    assert_eq!(stored.body["items"][0]["id"], first["id"]);

    // A link of another account cannot be watched.
    let (status, _) = open(&server, "/v1/clicks/stream?code=theirs", Some(&key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = open(&server, "/v1/clicks/stream", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_stream_token_opens_a_stream_without_a_header() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    create_link(&server, &key, "tok").await;
    let reply = server
        .post("/v1/clicks/stream-token", Some(&key), json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cst_"));
    let expires_at = reply.body["expires_at"].as_str().unwrap();
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap();
    let ttl = expires_at.with_timezone(&Utc) - Utc::now();
    assert!(ttl <= chrono::Duration::seconds(60) && ttl > chrono::Duration::zero());

    let (status, stream) = open(&server, &format!("/v1/clicks/stream?token={token}"), None).await;
    assert_eq!(status, StatusCode::OK);
    click(&server, "tok").await;
    assert_eq!(stream.unwrap().click().await["code"], "tok");

    // A token is not an API key, and a changed one is refused.
    let reply = server.get("/v1/links", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let mut forged = token.into_bytes();
    let at = forged.len() - 3;
    forged[at] = if forged[at] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), "cst_", "nonsense"] {
        let (status, _) = open(&server, &format!("/v1/clicks/stream?token={bad}"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}

#[tokio::test]
async fn an_account_may_open_sixteen_streams() {
    let server = TestServer::start(CONFIG).await;
    let key = server.account("acme").await;
    let other = server.account("other").await;
    let mut open_streams = Vec::new();
    for _ in 0..16 {
        let (status, stream) = open(&server, "/v1/clicks/stream", Some(&key)).await;
        assert_eq!(status, StatusCode::OK);
        open_streams.push(stream);
    }
    let (status, _) = open(&server, "/v1/clicks/stream", Some(&key)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = open(&server, "/v1/clicks/stream", Some(&other)).await;
    assert_eq!(status, StatusCode::OK);

    // A reader that leaves gives its place back.
    open_streams.pop();
    common::wait_until(WAIT, "a place for another stream", || async {
        let (status, stream) = open(&server, "/v1/clicks/stream", Some(&key)).await;
        (status == StatusCode::OK).then_some(stream)
    })
    .await;
}

#[tokio::test]
async fn quiet_streams_get_keep_alives_and_outlive_the_idle_timeout() {
    // Keep-alives come at half the idle timeout when that is under 15 s.
    let config = format!("{CONFIG}[server]\nidle_timeout = \"1s\"\n");
    let mut server = TestServer::start(&config).await;
    let key = server.account("acme").await;
    let (_, stream) = open(&server, "/v1/clicks/stream", Some(&key)).await;
    let mut stream = stream.unwrap();
    let started = tokio::time::Instant::now();
    let mut comments = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(stream.next().await.0, "comment");
        comments += 1;
    }
    assert!(comments >= 3, "{comments} keep-alives");

    // Shutting down ends open streams rather than waiting on them.
    server.stop().await;
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = stream.body.frame().await {}
    });
    end.await.expect("the stream ends at shutdown");
}

#[tokio::test]
async fn a_reader_that_falls_behind_is_dropped_and_counted() {
    let server = Arc::new(TestServer::start(CONFIG).await);
    let key = server.account("acme").await;
    create_link(&server, &key, "busy").await;
    let dropped_before = common::metric(&server, DROPPED).await;

    // A reader with a small receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/clicks/stream HTTP/1.1\r\nhost: relurl\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let (_, mut reader) = open(&server, "/v1/clicks/stream", Some(&key)).await;
    click(&server, "busy").await;
    // The stream is open once a healthy reader sees the same click.
    reader.as_mut().unwrap().click().await;

    common::wait_until(
        Duration::from_secs(120),
        "the slow reader to be dropped",
        || {
            let server = server.clone();
            async move {
                let clicks: Vec<_> = (0..64)
                    .map(|_| {
                        let server = server.clone();
                        tokio::spawn(async move { click(&server, "busy").await })
                    })
                    .collect();
                for c in clicks {
                    c.await.unwrap();
                }
                (common::metric(&server, DROPPED).await > dropped_before).then_some(())
            }
        },
    )
    .await;

    // What was queued arrives, then `event: dropped`, then the end.
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, slow.read_to_end(&mut seen))
        .await
        .expect("the dropped stream ends")
        .unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..100.min(text.len())]
    );
    assert!(text.contains("event: dropped\n"));
    assert!(text.contains("event: click\n"));
}
