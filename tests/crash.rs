//! Crash safety of webhook delivery: the server is killed with SIGKILL while a
//! receiver is down and deliveries are pending; after a restart, with the
//! receiver back, every event is delivered at least once.

mod common;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    process::{Child, Command},
    time::Duration,
};

use common::{ADMIN, TestServer, receiver::Receiver};
use serde_json::json;

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn start(config: &std::path::Path) -> Server {
    let (child, addr) = common::process::serve(config);
    Server { child, addr }
}

#[tokio::test]
async fn deliveries_pending_at_a_hard_kill_arrive_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver_addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.path().join("relurl.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nadmin_token = \"{ADMIN}\"\n[store]\npath = \"{}\"\n\
             [redirect]\ndurable_ack = true\n[fraud]\nenabled = false\n\
             [webhooks]\nallow_private_targets = true\nretry_jitter = 0.0\ntimeout = \"500ms\"\n\
             retry_schedule = [\"200ms\", \"500ms\", \"1s\", \"2s\", \"3s\", \"4s\", \"6s\", \"8s\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();

    let mut first = start(&config);
    let api = TestServer::attach(first.addr);
    let key = api.account("acme").await;
    let hook = api
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": format!("http://{receiver_addr}/"), "events": ["link.clicked"]}),
        )
        .await;
    let endpoint = hook.body["id"].as_str().unwrap().to_string();
    api.link(
        &key,
        json!({"destination": "https://example.com", "code": "k9"}),
    )
    .await;
    for _ in 0..20 {
        assert_eq!(api.visit("/k9", &[]).await.status, http::StatusCode::FOUND);
    }
    // Attempts are failing against the dead receiver.
    common::eventually(|| async {
        let log = api
            .get(&format!("/v1/webhooks/{endpoint}/deliveries"), Some(&key))
            .await;
        (log.body["items"].as_array().map_or(0, |a| a.len()) >= 5).then_some(())
    })
    .await;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let mut second = start(&config);
    let api = TestServer::attach(second.addr);
    let receiver = Receiver::start_on(receiver_addr).await;
    let got = receiver
        .wait_until(Duration::from_secs(40), |r| {
            r.iter()
                .map(|x| x.event_id())
                .collect::<BTreeSet<_>>()
                .len()
                >= 20
        })
        .await;
    let received: BTreeSet<String> = got.iter().map(|r| r.event_id()).collect();
    assert_eq!(received.len(), 20);
    assert_eq!(api.click_count(&key, "k9").await, 20);
    // Every event the server produced is one the receiver got.
    let produced: BTreeSet<String> = common::eventually(|| async {
        let log = api
            .get(
                &format!("/v1/webhooks/{endpoint}/deliveries?status=succeeded&limit=1000"),
                Some(&key),
            )
            .await;
        let ids: BTreeSet<String> = log.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["event_id"].as_str().unwrap().to_string())
            .collect();
        (ids.len() >= 20).then_some(ids)
    })
    .await;
    assert_eq!(produced, received);

    Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status()
        .unwrap();
    assert!(second.child.wait().unwrap().success());
}
