//! The Express receiver users copy (`examples/receiver-node`) against a real
//! relurl: it accepts real deliveries (both signatures verified, the Standard
//! Webhooks one with the official `standardwebhooks` npm package), rejects a
//! tampered body and deduplicates by event_id.
//!
//! Needs Node.js and npm; skipped with a message when absent, unless
//! `RELURL_REQUIRE_NODE=1` (CI), where their absence fails the test.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use common::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use http::{Method, StatusCode};
use serde_json::json;
use sha2::Sha256;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> (String, String) {
    let mac = |key: &[u8], data: &[u8]| {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let hex: String = mac(secret.as_bytes(), body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    (
        format!("sha256={hex}"),
        format!("v1,{}", STANDARD.encode(mac(&key, &signed))),
    )
}

#[tokio::test]
async fn the_node_receiver_accepts_real_deliveries_and_rejects_tampering() {
    if !common::node::available("receiver-node") {
        return;
    }
    let dir = common::node::receiver_dir();

    let server = TestServer::start(
        "[webhooks]\nallow_private_targets = true\nretry_schedule = [\"200ms\"]\n[redirect]\ndurable_ack = true\n[fraud]\nenabled = false\n",
    )
    .await;
    let key = server.account("acme").await;
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": format!("http://127.0.0.1:{port}/webhooks/relurl"), "events": ["*"]}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED);
    let secret = hook.body["secret"].as_str().unwrap().to_string();
    let id = hook.body["id"].as_str().unwrap().to_string();

    let mut child = Command::new("node")
        .arg("server.js")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("RELURL_WEBHOOK_SECRET", &secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node receiver");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let node = Node(child);
    loop {
        let line = lines.next().expect("receiver printed nothing").unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});

    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "node"}),
        )
        .await;
    for _ in 0..3 {
        server.visit("/node", &[]).await;
    }
    server
        .post(&format!("/v1/webhooks/{id}/test"), Some(&key), json!({}))
        .await;

    let receiver = TestServer::attach(format!("127.0.0.1:{port}").parse().unwrap());
    let seen = common::eventually(|| async {
        let r = receiver.get("/received", None).await;
        (r.body["events"].as_array().map_or(0, |e| e.len()) >= 5).then_some(r.body)
    })
    .await;
    let mut types: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "link.clicked",
            "link.clicked",
            "link.clicked",
            "link.created",
            "webhook.test"
        ]
    );
    assert_eq!(seen["rejected"], 0, "a real delivery was refused: {seen}");

    // A body signed here, then altered in transit: refused.
    let body = br#"{"type":"link.clicked","event_id":"0193a3c4-5b6e-7f00-8a1b-2c3d4e5f6a7b","timestamp":"2026-11-29T20:00:00.123Z","data":{}}"#;
    let ts = chrono::Utc::now().timestamp();
    let event = "0193a3c4-5b6e-7f00-8a1b-2c3d4e5f6a7b";
    let (relurl_sig, standard_sig) = sign(&secret, event, ts, body);
    let ts = ts.to_string();
    let headers = [
        ("x-relurl-signature", relurl_sig.as_str()),
        ("webhook-id", event),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", standard_sig.as_str()),
    ];
    let post = |b: &'static [u8]| {
        receiver.raw(
            Method::POST,
            "/webhooks/relurl",
            None,
            &headers,
            Some(Bytes::from_static(b)),
        )
    };
    assert_eq!(post(body).await.status, StatusCode::OK);
    let tampered = br#"{"type":"link.clicked","event_id":"0193a3c4-5b6e-7f00-8a1b-2c3d4e5f6a7b","timestamp":"2026-11-29T20:00:00.123Z","data":{"x":1}}"#;
    assert_eq!(post(tampered).await.status, StatusCode::UNAUTHORIZED);
    let again = post(body).await;
    assert_eq!(again.body["status"], "duplicate");
    let after = receiver.get("/received", None).await;
    assert_eq!(after.body["rejected"], 1);
    assert_eq!(after.body["duplicates"], 1);
    drop(node);
}
