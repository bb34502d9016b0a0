//! Webhook delivery against real HTTP receivers on loopback, with short retry
//! schedules: filters, wire format, signatures, retries, timeouts, Retry-After,
//! failed deliveries and the retry API, rate limits, isolation, supervision,
//! limits, SSRF refusals, rotation, expiry and auto-disable.

mod common;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use common::{
    TestServer,
    receiver::{Answer, Received, Receiver},
};
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const BASE: &str = "[webhooks]\nallow_private_targets = true\nretry_schedule = [\"200ms\", \"600ms\"]\nretry_jitter = 0.0\ntimeout = \"500ms\"\n[redirect]\ndurable_ack = true\nflush_interval = \"2ms\"\n[fraud]\nenabled = false\n";

fn config(webhooks_extra: &str) -> String {
    BASE.replace("[webhooks]\n", &format!("[webhooks]\n{webhooks_extra}"))
}

async fn endpoint(server: &TestServer, key: &str, body: Value) -> (String, String) {
    let reply = server.post("/v1/webhooks", Some(key), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (
        reply.body["id"].as_str().unwrap().to_string(),
        reply.body["secret"].as_str().unwrap().to_string(),
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks both signatures of a delivery against `secret`, computed here.
fn assert_signed_by(r: &Received, secret: &str) {
    let expected = format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &r.body)));
    let sent = r.header("x-relurl-signature");
    assert!(
        sent.split(',').any(|s| s == expected),
        "{sent} lacks {expected}"
    );

    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = r.header("webhook-id");
    let ts = r.header("webhook-timestamp");
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)));
    let sent = r.header("webhook-signature");
    assert!(
        sent.split(' ').any(|s| s == expected),
        "{sent} lacks {expected}"
    );
}

/// When the server started a logged attempt. Spacing is measured on these, not
/// on arrival at the receiver, which also includes connection set-up.
fn started(attempt: &Value) -> Duration {
    let at = attempt["at"].as_str().expect("attempt has `at`");
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("`at` is RFC 3339");
    Duration::from_millis(at.timestamp_millis() as u64)
}

fn types(received: &[Received]) -> Vec<String> {
    let mut t: Vec<String> = received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

/// How long a test waits for deliveries or settled state before failing: far
/// past what any scenario needs, so a busy machine only makes it slower.
const WAIT: Duration = Duration::from_secs(30);

/// The setup most tests share: a server, an account, and one endpoint of that
/// account pointing at a fresh receiver.
struct Hooked {
    server: TestServer,
    key: String,
    receiver: Receiver,
    id: String,
    secret: String,
}

impl Hooked {
    /// `endpoint` is the endpoint's body without its `url`.
    async fn start(config: &str, mut endpoint_body: Value) -> Hooked {
        let server = TestServer::start(config).await;
        let key = server.account("acme").await;
        let receiver = Receiver::start().await;
        endpoint_body["url"] = receiver.url("/").into();
        let (id, secret) = endpoint(&server, &key, endpoint_body).await;
        Hooked {
            server,
            key,
            receiver,
            id,
            secret,
        }
    }

    /// Creates a link, which emits `link.created`.
    async fn create_link(&self, code: &str) {
        self.server
            .link(
                &self.key,
                json!({"destination": "https://example.com", "code": code}),
            )
            .await;
    }

    /// Asks for a `webhook.test` delivery.
    async fn send_test(&self) {
        let reply = self
            .server
            .post(
                &format!("/v1/webhooks/{}/test", self.id),
                Some(&self.key),
                json!({}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    }

    /// The attempts log (`query` like `?status=failed`), newest first.
    async fn attempts(&self, query: &str) -> Vec<Value> {
        let path = format!("/v1/webhooks/{}/deliveries{query}", self.id);
        let reply = self.server.get(&path, Some(&self.key)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["items"].as_array().unwrap().clone()
    }

    /// The attempts log once it holds at least `n` entries (attempts are
    /// recorded in the background after the receiver answered).
    async fn attempts_at_least(&self, n: usize, query: &str) -> Vec<Value> {
        common::wait_until(WAIT, &format!("{n} logged attempts{query}"), || async {
            let items = self.attempts(query).await;
            (items.len() >= n).then_some(items)
        })
        .await
    }
}

#[tokio::test]
async fn events_reach_matching_endpoints_signed_and_in_the_wire_format() {
    let began = chrono::Utc::now().timestamp();
    let server = TestServer::start(&format!(
        "{}[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        config("")
    ))
    .await;
    let key = server.account("acme").await;
    let (all, every) = (Receiver::start().await, Receiver::start().await);
    let (clicks, changes) = (Receiver::start().await, Receiver::start().await);
    let (_, all_secret) = endpoint(
        &server,
        &key,
        json!({"url": all.url("/all"), "events": ["*"]}),
    )
    .await;
    let (clicks_id, clicks_secret) = endpoint(
        &server,
        &key,
        json!({"url": clicks.url("/clicks"), "events": ["link.clicked"]}),
    )
    .await;
    endpoint(
        &server,
        &key,
        json!({"url": changes.url("/changes"), "events": ["link.updated", "link.expired"]}),
    )
    .await;
    // Another account's endpoint sees nothing of this account.
    let other = server.account("other").await;
    endpoint(
        &server,
        &other,
        json!({"url": every.url("/other"), "events": ["*"]}),
    )
    .await;

    server
        .link(
            &key,
            json!({"destination": "https://example.com/a", "code": "w1", "tags": ["t1"]}),
        )
        .await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    server
        .link(
            &key,
            json!({"destination": "https://example.com/b", "code": "w2", "expires_at": soon}),
        )
        .await;
    server
        .visit(
            "/w1?x=1",
            &[
                (
                    "user-agent",
                    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
                ),
                ("x-forwarded-for", "8.8.8.8"),
                ("referer", "https://t.co/abc"),
            ],
        )
        .await;
    let patched = server
        .patch(
            "/v1/links/w1",
            Some(&key),
            json!({"destination": "https://example.org/new"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let test = server
        .post(
            &format!("/v1/webhooks/{clicks_id}/test"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(test.status, StatusCode::ACCEPTED);

    let got_all = all.wait_for(5, WAIT).await;
    let got_clicks = clicks.wait_for(2, WAIT).await;
    let got_changes = changes.wait_for(2, WAIT).await;
    assert_eq!(
        types(&got_all),
        [
            "link.clicked",
            "link.created",
            "link.created",
            "link.expired",
            "link.updated"
        ]
    );
    assert_eq!(types(&got_clicks), ["link.clicked", "webhook.test"]);
    assert_eq!(types(&got_changes), ["link.expired", "link.updated"]);
    assert!(every.received().is_empty());

    for r in &got_all {
        assert_signed_by(r, &all_secret);
        let body = r.json();
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("x-relurl-event"), body["type"]);
        assert_eq!(r.header("x-relurl-event-id"), body["event_id"]);
        assert_eq!(r.header("webhook-id"), body["event_id"]);
        assert_eq!(r.header("x-relurl-delivery-attempt"), "1");
        let id = uuid::Uuid::parse_str(body["event_id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let ts = body["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('.'), "{ts}");
        let sent_at: i64 = r.header("webhook-timestamp").parse().unwrap();
        // Signed during this test.
        let now = chrono::Utc::now().timestamp();
        assert!((began..=now).contains(&sent_at), "{sent_at}");
    }
    for r in &got_clicks {
        assert_signed_by(r, &clicks_secret);
    }

    let clicked = got_all
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "link.clicked")
        .unwrap();
    assert_eq!(
        clicked["data"]["link"],
        json!({"code": "w1", "short_url": "http://127.0.0.1:8080/w1", "destination": "https://example.com/a", "tags": ["t1"]})
    );
    let click = &clicked["data"]["click"];
    assert_eq!(click["ip"], "8.8.8.8");
    assert_eq!(click["referrer"], "https://t.co/abc");
    assert_eq!(click["referrer_host"], "t.co");
    assert_eq!(click["location"], json!({"country": "US"}));
    assert_eq!(click["device"], "desktop");
    assert_eq!(click["browser"], "Firefox");
    assert_eq!(click["os"], "Linux");
    assert_eq!(click["is_bot"], false);
    assert!(click["user_agent"].as_str().unwrap().contains("Firefox"));
    // The same click, by the same id, as the clicks listing shows it.
    let listed = server.get("/v1/links/w1/clicks", Some(&key)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let listed_id = &listed.body["items"][0]["id"];
    assert!(listed_id.is_string(), "{:?}", listed.body);
    assert_eq!(click["id"], *listed_id);

    let updated = got_changes
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "link.updated")
        .unwrap();
    assert_eq!(
        updated["data"]["changes"],
        json!([{"field": "destination", "old": "https://example.com/a", "new": "https://example.org/new"}])
    );
    assert_eq!(
        updated["data"]["link"]["destination"],
        "https://example.org/new"
    );
    let expired = got_changes
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "link.expired")
        .unwrap();
    assert_eq!(expired["data"]["link"]["code"], "w2");
}

#[tokio::test]
async fn deleting_a_link_emits_link_deleted() {
    let hooked = Hooked::start(&config(""), json!({"events": ["link.deleted"]})).await;
    hooked
        .server
        .link(
            &hooked.key,
            json!({"destination": "https://example.com/gone", "code": "gone", "tags": ["t"]}),
        )
        .await;
    let deleted = hooked
        .server
        .delete("/v1/links/gone", Some(&hooked.key))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let got = hooked.receiver.wait_for(1, WAIT).await;
    assert_eq!(types(&got), ["link.deleted"]);
    assert_signed_by(&got[0], &hooked.secret);
    assert_eq!(
        got[0].json()["data"],
        json!({"link": {"code": "gone", "short_url": "http://127.0.0.1:8080/gone", "destination": "https://example.com/gone", "tags": ["t"]}})
    );
    // Delivered once, and logged like any other event.
    let attempts = hooked.attempts_at_least(1, "").await;
    assert_eq!(attempts[0]["type"], "link.deleted");
    assert_eq!(attempts[0]["status"], "succeeded");
}

#[tokio::test]
async fn failed_attempts_are_retried_on_the_schedule_with_the_same_event() {
    let hooked = Hooked::start(&config(""), json!({"events": ["link.created"]})).await;
    hooked.receiver.script([
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(200),
    ]);
    hooked.create_link("r").await;

    let got = hooked.receiver.wait_for(3, WAIT).await;
    let attempts: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-relurl-delivery-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "body changed between attempts"
    );
    assert!(got.iter().all(|r| r.event_id() == got[0].event_id()));
    // The attempts log tells the same story.
    let items = hooked.attempts_at_least(3, "").await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0]["status"], "succeeded");
    assert_eq!(items[0]["attempt"], 3);
    assert_eq!(items[0]["status_code"], 200);
    // The receiver's answer is kept in the log.
    assert_eq!(items[0]["response_body"], "ok");
    assert_eq!(items[2]["status"], "pending");
    assert_eq!(items[2]["status_code"], 500);
    assert!(items[2]["next_attempt_at"].is_string());
    assert_eq!(items[2]["type"], "link.created");
    // Offsets count from the first attempt: 200 ms, then 600 ms. Only lower
    // bounds hold on a busy machine; the exact offsets are unit-tested in
    // webhooks::policy.
    let second = started(&items[1]) - started(&items[2]);
    let third = started(&items[0]) - started(&items[2]);
    assert!(second >= Duration::from_millis(199), "{second:?}");
    assert!(third >= Duration::from_millis(599), "{third:?}");
}

/// One way a first attempt fails, the least time before its retry, and what
/// the attempts log records for it.
struct FirstFailure {
    name: &'static str,
    answer: Answer,
    retried_after_at_least: Duration,
    status_code: Option<u16>,
    error_contains: Option<&'static str>,
}

#[tokio::test]
async fn each_kind_of_failed_attempt_is_retried_and_logged() {
    let cases = [
        FirstFailure {
            name: "server error",
            answer: Answer::Status(500),
            // The schedule's first offset.
            retried_after_at_least: Duration::from_millis(190),
            status_code: Some(500),
            error_contains: None,
        },
        FirstFailure {
            name: "slower than the timeout",
            answer: Answer::Slow(Duration::from_millis(1500)),
            // Not before the 500 ms timeout gave up on the first attempt.
            retried_after_at_least: Duration::from_millis(490),
            status_code: None,
            error_contains: Some("500 ms"),
        },
        FirstFailure {
            name: "429 with Retry-After",
            answer: Answer::RetryAfter(429, 1),
            // The schedule alone would retry after 200 ms; the receiver asked for 1 s.
            retried_after_at_least: Duration::from_millis(990),
            status_code: Some(429),
            error_contains: None,
        },
        FirstFailure {
            name: "503 with Retry-After",
            answer: Answer::RetryAfter(503, 1),
            retried_after_at_least: Duration::from_millis(990),
            status_code: Some(503),
            error_contains: None,
        },
    ];
    for case in cases {
        let name = case.name;
        let hooked = Hooked::start(&config(""), json!({"events": ["*"]})).await;
        hooked.receiver.script([case.answer]);
        hooked.create_link("first").await;

        let got = hooked.receiver.wait_for(2, WAIT).await;
        assert_eq!(got[1].header("x-relurl-delivery-attempt"), "2", "{name}");
        assert_eq!(got[0].event_id(), got[1].event_id(), "{name}");
        assert_eq!(got[0].body, got[1].body, "{name}");
        // Both attempts are logged, the second once the receiver answered it.
        let logged = hooked.attempts_at_least(2, "").await;
        let attempt = |n: u64| {
            logged
                .iter()
                .find(|a| a["attempt"] == n)
                .unwrap_or_else(|| panic!("{name}: no attempt {n} in {logged:?}"))
        };
        let (first, second) = (attempt(1), attempt(2));
        let gap = started(second) - started(first);
        assert!(
            gap >= case.retried_after_at_least,
            "{name}: retried after {gap:?}"
        );
        assert_eq!(first["status"], "pending", "{name}");
        assert_eq!(first["status_code"], json!(case.status_code), "{name}");
        assert!(first["next_attempt_at"].is_string(), "{name}: {first}");
        if let Some(text) = case.error_contains {
            let error = first["error"].as_str().unwrap_or_default();
            assert!(error.contains(text), "{name}: {first}");
        }
    }
}

#[tokio::test]
async fn exhausted_deliveries_fail_and_the_retry_api_delivers_them() {
    let Hooked {
        server,
        key,
        receiver,
        id,
        ..
    } = Hooked::start(&config(""), json!({"events": ["link.created"]})).await;
    receiver.answer_by_default(Answer::Status(503));
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "dead"}),
        )
        .await;
    let got = receiver.wait_for(3, WAIT).await;
    let event_id = got[0].event_id();

    // The third attempt was the last: the delivery is failed.
    let path = format!("/v1/webhooks/{id}/deliveries?status=failed");
    let failed = common::wait_until(WAIT, "a failed delivery", || async {
        let reply = server.get(&path, Some(&key)).await;
        (!reply.body["items"].as_array().unwrap().is_empty()).then_some(reply)
    })
    .await;
    assert_eq!(failed.body["items"][0]["event_id"], event_id.as_str());
    assert_eq!(failed.body["items"][0]["attempt"], 3);

    receiver.answer_by_default(Answer::Status(200));
    let retry = server
        .post(
            &format!("/v1/webhooks/{id}/deliveries/{event_id}/retry"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{:?}", retry.body);
    let got = receiver.wait_for(4, WAIT).await;
    assert_eq!(got[3].event_id(), event_id);
    assert_eq!(got[3].header("x-relurl-delivery-attempt"), "4");
    assert_eq!(got[3].body, got[0].body);

    // Delivered now: retrying it again is a conflict, not an unknown event.
    let succeeded = format!("/v1/webhooks/{id}/deliveries?status=succeeded");
    common::wait_until(WAIT, "the retried delivery to succeed", || async {
        let reply = server.get(&succeeded, Some(&key)).await;
        (reply.body["items"][0]["event_id"] == event_id.as_str()).then_some(())
    })
    .await;
    let again = server
        .post(
            &format!("/v1/webhooks/{id}/deliveries/{event_id}/retry"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    let unknown = server
        .post(
            &format!(
                "/v1/webhooks/{id}/deliveries/{}/retry",
                uuid::Uuid::now_v7()
            ),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_rate_limit_spaces_deliveries_and_all_arrive() {
    let hooked = Hooked::start(
        &config(""),
        json!({"events": ["link.clicked"], "rate_limit_per_sec": 20}),
    )
    .await;
    let (server, key) = (Arc::new(hooked.server), hooked.key);
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "rl"}),
        )
        .await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                server.visit("/rl", &[]).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = hooked.receiver.wait_for(100, WAIT).await;
    let ids: BTreeSet<String> = got.iter().map(Received::event_id).collect();
    assert_eq!(ids.len(), 100);
    // Spacing on the server's own start times, logged for every attempt.
    let path = format!("/v1/webhooks/{}/deliveries?limit=1000", hooked.id);
    let sent: Vec<Duration> = common::wait_until(WAIT, "100 logged attempts", || async {
        let items = server.get(&path, Some(&key)).await.body["items"].clone();
        let items = items.as_array().unwrap();
        (items.len() >= 100).then(|| items.iter().map(started).collect())
    })
    .await;
    let (first, last) = (sent.iter().min().unwrap(), sent.iter().max().unwrap());
    // 20/s with a burst of 20: the last of 100 cannot start before 4 s.
    let span = *last - *first;
    assert!(
        span >= Duration::from_millis(3800),
        "100 deliveries in {span:?}"
    );
    let first_second = sent
        .iter()
        .filter(|at| **at - *first < Duration::from_secs(1))
        .count();
    assert!(first_second <= 41, "{first_second} in the first second");
}

#[tokio::test]
async fn a_dead_endpoint_does_not_slow_a_healthy_one() {
    // The dead endpoint's retries wait a minute: were endpoints not isolated,
    // the healthy one would wait behind them and miss the deadline.
    let minute_retries = config("").replace(
        "retry_schedule = [\"200ms\", \"600ms\"]",
        "retry_schedule = [\"60s\"]",
    );
    let Hooked {
        server,
        key,
        receiver: healthy,
        ..
    } = Hooked::start(&minute_retries, json!({"events": ["link.clicked"]})).await;
    // A port nobody listens on: connection refused, retries pile up.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (dead_id, _) = endpoint(
        &server,
        &key,
        json!({"url": format!("http://{closed}/"), "events": ["link.clicked"]}),
    )
    .await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "iso"}),
        )
        .await;
    for _ in 0..50 {
        server.visit("/iso", &[]).await;
    }
    healthy.wait_for(50, WAIT).await;
    let log = server
        .get(&format!("/v1/webhooks/{dead_id}/deliveries"), Some(&key))
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|a| a["status_code"].is_null() && a["error"].is_string()),
        "{items:?}"
    );
    // All of them still wait for their retry while the healthy endpoint is done.
    assert!(items.iter().all(|a| a["status"] == "pending"), "{items:?}");
}

#[tokio::test]
async fn a_panicking_endpoint_actor_is_restarted_and_its_deliveries_arrive() {
    let hooked = Hooked::start(&config(""), json!({"events": ["link.created"]})).await;
    hooked.receiver.script([Answer::Status(500)]);
    hooked.create_link("boom").await;
    let first = hooked.receiver.wait_for(1, WAIT).await;
    let restarts = "relurl_webhook_actor_restarts_total";
    let restarts_before = common::metric(&hooked.server, restarts).await;
    // A retry is pending in the actor when it fails.
    let directory = &hooked.server.running.as_ref().unwrap().directory;
    assert!(relurl::webhooks::supervisor::crash_endpoint(
        directory,
        hooked.id.parse().unwrap()
    ));
    let got = hooked.receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].event_id(), first[0].event_id());
    // At least: the recorder is shared with the other tests of this binary.
    common::wait_until(WAIT, "the restart to be counted", || async {
        (common::metric(&hooked.server, restarts).await - restarts_before >= 1.0).then_some(())
    })
    .await;
    // The restarted actor keeps delivering new events.
    hooked.create_link("after").await;
    hooked.receiver.wait_for(3, WAIT).await;
}

#[tokio::test]
async fn limits_private_targets_and_bad_input_are_refused() {
    let server = TestServer::start("[webhooks]\nallow_private_targets = false\n").await;
    let key = server.account("acme").await;
    for url in [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:9000/hook",
        "http://100.64.1.1/",
        "ftp://93.184.216.34/",
    ] {
        let reply = server
            .post(
                "/v1/webhooks",
                Some(&key),
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {:?}",
            reply.body
        );
        assert_eq!(reply.error_field(), "url", "{url}");
    }
    let unknown = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "https://93.184.216.34/", "events": ["link.clicked", "link.exploded"]}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("link.exploded")
    );
    let rate = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "https://93.184.216.34/", "events": ["*"], "rate_limit_per_sec": 0}),
        )
        .await;
    assert_eq!(rate.error_field(), "rate_limit_per_sec");

    for i in 0..5 {
        let reply = server
            .post(
                "/v1/webhooks",
                Some(&key),
                json!({"url": format!("https://93.184.216.34/{i}"), "events": ["*"]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert!(reply.body["secret"].as_str().unwrap().starts_with("whsec_"));
    }
    let sixth = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "https://93.184.216.34/6", "events": ["*"]}),
        )
        .await;
    assert_eq!(sixth.status, StatusCode::CONFLICT);
    assert!(
        sixth.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains('5')
    );
    let listed = server.get("/v1/webhooks", Some(&key)).await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(
        items.iter().all(|e| e.get("secret").is_none()),
        "secrets are shown once"
    );

    // Another account sees none of them.
    let other = server.account("other").await;
    let id = items[0]["id"].as_str().unwrap();
    assert_eq!(
        server
            .get(&format!("/v1/webhooks/{id}"), Some(&other))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .delete(&format!("/v1/webhooks/{id}"), Some(&other))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Deleting one makes room.
    assert_eq!(
        server
            .delete(&format!("/v1/webhooks/{id}"), Some(&key))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let again = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": "https://93.184.216.34/7", "events": ["*"]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
}

#[tokio::test]
async fn after_rotation_both_secrets_sign() {
    let hooked = Hooked::start(&config(""), json!({"events": ["webhook.test"]})).await;
    let (id, old) = (&hooked.id, &hooked.secret);
    let rotated = hooked
        .server
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(&hooked.key),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(&new, old);
    hooked.send_test().await;
    let got = hooked.receiver.wait_for(1, WAIT).await;
    assert_signed_by(&got[0], old);
    assert_signed_by(&got[0], &new);
    assert_eq!(got[0].header("x-relurl-signature").split(',').count(), 2);
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
}

/// Fifty rotations in a row: deliveries carry the newest secret and at most
/// two earlier ones, so headers stay small enough for stock receivers.
#[tokio::test]
async fn after_many_rotations_at_most_three_secrets_sign() {
    let hooked = Hooked::start(&config(""), json!({"events": ["webhook.test"]})).await;
    let path = format!("/v1/webhooks/{}/rotate-secret", hooked.id);
    let mut newest = String::new();
    for _ in 0..50 {
        let rotated = hooked
            .server
            .post(&path, Some(&hooked.key), json!({}))
            .await;
        assert_eq!(rotated.status, StatusCode::OK);
        newest = rotated.body["secret"].as_str().unwrap().to_string();
    }
    hooked.send_test().await;
    let got = hooked.receiver.wait_for(1, WAIT).await;
    assert_signed_by(&got[0], &newest);
    assert_eq!(got[0].header("x-relurl-signature").split(',').count(), 3);
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 3);
}

#[tokio::test]
async fn an_endpoint_whose_deliveries_keep_failing_is_disabled() {
    let no_retries = config("disable_after_failed_deliveries = 3\n").replace(
        "retry_schedule = [\"200ms\", \"600ms\"]",
        "retry_schedule = []",
    );
    let hooked = Hooked::start(&no_retries, json!({"events": ["webhook.test"]})).await;
    let (server, key, id) = (&hooked.server, &hooked.key, &hooked.id);
    hooked.receiver.answer_by_default(Answer::Status(500));
    for _ in 0..3 {
        hooked.send_test().await;
    }
    hooked.receiver.wait_for(3, WAIT).await;
    let endpoint = common::wait_until(WAIT, "the endpoint to be disabled", || async {
        let reply = server.get(&format!("/v1/webhooks/{id}"), Some(key)).await;
        (reply.body["enabled"] == false).then_some(reply.body)
    })
    .await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 deliveries failed")
    );
    // Re-enabled, it delivers again.
    hooked.receiver.answer_by_default(Answer::Status(200));
    let enabled = server
        .patch(
            &format!("/v1/webhooks/{id}"),
            Some(key),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(enabled.body["disabled_reason"], json!(null));
    hooked.send_test().await;
    hooked.receiver.wait_for(4, WAIT).await;
}

#[tokio::test]
async fn link_expired_fires_once_even_for_links_that_expired_while_down() {
    let Hooked {
        server,
        key,
        receiver,
        id,
        ..
    } = Hooked::start(
        &config(""),
        json!({"events": ["link.expired", "webhook.test"]}),
    )
    .await;
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "probe"}),
        )
        .await;
    let mut server = server;
    server.stop().await;
    // While the server is down, a link passes its expiry.
    {
        use relurl::store::{EmbeddedStore, Store};
        let store = EmbeddedStore::open(&server.dir).unwrap();
        let mut link = store.get_link("probe").await.unwrap().unwrap();
        link.code = "gone-while-down".into();
        link.expires_at = Some(chrono::Utc::now() - chrono::Duration::seconds(5));
        assert!(store.insert_link(&link, &[]).await.unwrap());
        store.flush().await.unwrap();
    }
    let server = server.restart(&config("")).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["data"]["link"]["code"], "gone-while-down");
    // Restarting again does not fire it twice. Part of the scenario: two
    // expiry ticks pass, in which a second link.expired would be produced;
    // then a test event, delivered after it, is the barrier.
    let server = server.restart(&config("")).await;
    tokio::time::sleep(relurl::expiry::TICK * 2).await;
    server
        .post(&format!("/v1/webhooks/{id}/test"), Some(&key), json!({}))
        .await;
    let got = receiver
        .wait_until(WAIT, |r| {
            r.iter().any(|x| x.json()["type"] == "webhook.test")
        })
        .await;
    assert_eq!(
        got.iter()
            .filter(|r| r.json()["type"] == "link.expired")
            .count(),
        1
    );
}

#[tokio::test]
async fn webhook_metrics_are_exported() {
    let hooked = Hooked::start(&config(""), json!({"events": ["*"]})).await;
    let success = "relurl_webhook_deliveries_total{outcome=\"success\"}";
    let before = common::metric(&hooked.server, success).await;
    hooked.send_test().await;
    hooked.receiver.wait_for(1, WAIT).await;
    let text = hooked.server.metrics_text().await;
    for name in [
        "relurl_webhook_deliveries_total",
        "relurl_webhook_attempt_latency_seconds_bucket",
        "relurl_webhook_pending_deliveries",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    // At least: the recorder is shared with the other tests of this binary.
    // The outcome is counted once the receiver answered, so wait for it.
    common::wait_until(WAIT, "the success to be counted", || async {
        (common::metric(&hooked.server, success).await - before >= 1.0).then_some(())
    })
    .await;
}

/// A receiver's long answer is kept only as a short prefix: the attempts log
/// is a debugging hint, not a way to read back what a URL serves.
#[tokio::test]
async fn only_a_short_prefix_of_the_response_body_is_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let body = "x".repeat(1000);
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    let server = TestServer::start(&config("")).await;
    let key = server.account("acme").await;
    let url = format!("http://{addr}/");
    let (id, _) = endpoint(&server, &key, json!({"url": url, "events": ["*"]})).await;
    let sent = server
        .post(&format!("/v1/webhooks/{id}/test"), Some(&key), json!({}))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let path = format!("/v1/webhooks/{id}/deliveries?status=succeeded");
    let body = common::wait_until(WAIT, "a logged attempt", || async {
        let reply = server.get(&path, Some(&key)).await;
        reply.body["items"][0]["response_body"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert_eq!(body, "x".repeat(256));
}

/// A target whose name does not resolve: its attempt records a DNS error,
/// and another endpoint's deliveries go on meanwhile.
#[tokio::test]
async fn an_unresolvable_host_fails_its_attempt_and_blocks_nothing_else() {
    let hooked = Hooked::start(&config(""), json!({"events": ["webhook.test"]})).await;
    let (server, key) = (&hooked.server, &hooked.key);
    let (lost, _) = endpoint(
        server,
        key,
        json!({"url": "http://no-such-host.invalid/", "events": ["*"]}),
    )
    .await;
    let test = |id: String| async move {
        let path = format!("/v1/webhooks/{id}/test");
        let sent = server.post(&path, Some(key), json!({})).await;
        assert_eq!(sent.status, StatusCode::ACCEPTED);
    };
    test(lost.clone()).await;
    test(hooked.id.clone()).await;
    hooked.receiver.wait_for(1, WAIT).await;
    let path = format!("/v1/webhooks/{lost}/deliveries");
    let error = common::wait_until(WAIT, "the failed attempt", || async {
        let reply = server.get(&path, Some(key)).await;
        reply.body["items"][0]["error"].as_str().map(str::to_string)
    })
    .await;
    assert!(error.contains("dns"), "{error}");
}

#[tokio::test]
async fn an_account_stops_at_max_endpoints_until_one_is_deleted() {
    let server = TestServer::start(&config("max_endpoints_per_account = 2\n")).await;
    let key = server.account("limited").await;
    let other = server.account("other").await;
    let url = |n: u32| json!({ "url": format!("http://127.0.0.1:9/{n}"), "events": ["*"] });
    let (first, _) = endpoint(&server, &key, url(1)).await;
    endpoint(&server, &key, url(2)).await;
    let refused = server.post("/v1/webhooks", Some(&key), url(3)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(
        refused.body.to_string().contains("at most 2"),
        "{:?}",
        refused.body
    );
    // Another account's count is its own.
    endpoint(&server, &other, url(4)).await;
    let deleted = server
        .delete(&format!("/v1/webhooks/{first}"), Some(&key))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    endpoint(&server, &key, url(5)).await;
    let listed = server.get("/v1/webhooks", Some(&key)).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "{:?}",
        listed.body
    );
}
