//! Cluster mode with three real `relurl` processes on one fresh keyspace
//! (`RELURL_TEST_SCYLLA`), the six scenarios of issue 8 in one run so the
//! cluster starts once: exactly-once delivery, change propagation, takeover
//! after SIGKILL, cluster-wide fraud threshold, singleton expiry, rejoin.
//! Short heartbeat and lease TTL (200ms / 2s) keep it fast. Measured timings
//! are printed with eprintln (`cargo test --test cluster -- --nocapture`).

mod common;

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use common::{
    ADMIN, TestServer, metric,
    receiver::{Received, Receiver},
    wait_until,
};
use http::StatusCode;
use relurl::cluster::rendezvous::preferred_owner;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

/// The contract: a change made through any node is served by all within this.
const PROPAGATION: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(30);

struct Node {
    child: Child,
    api: TestServer,
    id: Uuid,
    config: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts `relurl serve` on `config`; returns once it listens.
    async fn start(config: PathBuf, id: Uuid) -> Node {
        let path = config.clone();
        let (child, addr) = tokio::task::spawn_blocking(move || common::process::serve(&path))
            .await
            .expect("start task");
        Node {
            child,
            api: TestServer::attach(addr),
            id,
            config,
        }
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    async fn leases(&self) -> f64 {
        metric(&self.api, "relurl_cluster_leases_held").await
    }

    async fn handovers(&self) -> f64 {
        metric(&self.api, "relurl_cluster_handovers_total").await
    }
}

fn node_config(dir: &Path, name: &str, store: &str, id: Uuid) -> PathBuf {
    // Retries every second or so for 40 s: a takeover finds them still pending.
    let schedule: Vec<String> = ["\"200ms\"".to_string(), "\"500ms\"".to_string()]
        .into_iter()
        .chain((1..=40).map(|s| format!("\"{s}s\"")))
        .collect();
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [auth]\nadmin_token = \"{ADMIN}\"\n{store}\
         [redirect]\ndurable_ack = true\n\
         [fraud]\nthreshold = 100\nwindow = \"60s\"\npolicy = \"disable_link\"\n\
         [webhooks]\nallow_private_targets = true\nretry_jitter = 0.0\ntimeout = \"500ms\"\n\
         max_endpoints_per_account = 50\nretry_schedule = [{}]\n\
         [cluster]\nheartbeat = \"200ms\"\nlease_ttl = \"2s\"\nnode_id = \"{id}\"\n",
        schedule.join(", ")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn location(reply: &common::Reply) -> String {
    reply.header("location").unwrap_or_default().to_string()
}

fn event_ids(received: &[Received], path: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.path == path)
        .map(Received::event_id)
        .collect()
}

fn distinct(ids: &[String]) -> usize {
    ids.iter().collect::<BTreeSet<_>>().len()
}

async fn endpoint(node: &TestServer, key: &str, url: String, events: Value) -> Uuid {
    let reply = node
        .post(
            "/v1/webhooks",
            Some(key),
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("endpoint id")
}

/// Makes a link through `node` and waits out the contract's propagation bound
/// (1 s), so every node serves it.
async fn link_everywhere(
    node: &TestServer,
    key: &str,
    code: &str,
    destination: &str,
    since: Instant,
) {
    node.link(key, json!({"destination": destination, "code": code}))
        .await;
    tokio::time::sleep_until(since + PROPAGATION).await;
}

/// The account's fraud incidents on `code`.
async fn incidents_on(node: &TestServer, key: &str, code: &str) -> Vec<Value> {
    let reply = node.get("/v1/fraud/incidents", Some(key)).await;
    let items = reply.body["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().filter(|i| i["code"] == code).collect()
}

async fn total_leases(nodes: &[&Node]) -> f64 {
    let mut sum = 0.0;
    for node in nodes {
        sum += node.leases().await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_keyspace() {
    let Some(cql_node) = common::cql::node() else {
        return;
    };
    let (store, keyspace) = common::cql::backend_config(&cql_node);
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let configs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .zip(ids)
        .map(|(name, id)| node_config(dir.path(), name, &store, id))
        .collect();
    let started = Instant::now();
    // A first: it creates the keyspace and tables; B and C then start together.
    let mut a = Node::start(configs[0].clone(), ids[0]).await;
    let (b, c) = tokio::join!(
        Node::start(configs[1].clone(), ids[1]),
        Node::start(configs[2].clone(), ids[2])
    );
    eprintln!("cluster: three nodes up in {:?}", started.elapsed());
    let owner = |endpoint: Uuid| preferred_owner(endpoint.as_u128(), &ids).expect("nodes");
    // Endpoints that exist (each one lease) plus the expiry singleton.
    let mut endpoints: Vec<Uuid> = Vec::new();

    // 1. Endpoint and link through A, 50 clicks through B and C: exactly once.
    let key = a.api.account("acme").await;
    let rx = Receiver::start().await;
    let created = Instant::now();
    endpoints.push(endpoint(&a.api, &key, rx.url("/s1"), json!(["link.clicked"])).await);
    link_everywhere(&a.api, &key, "one", "https://example.com/one", created).await;
    for i in 0..50 {
        let node = if i % 2 == 0 { &b } else { &c };
        let ip = format!("192.0.2.{i}");
        let reply = node.api.visit("/one", &[("x-forwarded-for", &ip)]).await;
        assert_eq!(reply.status, StatusCode::FOUND);
    }
    rx.wait_until(LONG, |got| distinct(&event_ids(got, "/s1")) >= 50)
        .await;
    // A sentinel through A: once it is in, any duplicate of the 50 would be too.
    a.api
        .visit("/one", &[("x-forwarded-for", "192.0.2.200")])
        .await;
    let got = rx
        .wait_until(LONG, |got| distinct(&event_ids(got, "/s1")) >= 51)
        .await;
    let s1 = event_ids(&got, "/s1");
    let duplicates = s1.len() - distinct(&s1);
    eprintln!(
        "scenario 1: 51 events, {} deliveries, {duplicates} duplicates",
        s1.len()
    );
    assert_eq!(duplicates, 0, "duplicate deliveries in steady state");

    // 2a. A PATCH through B is served by A (which had the link cached) within 1 s.
    assert_eq!(
        location(&a.api.visit("/one", &[]).await),
        "https://example.com/one"
    );
    let t0 = Instant::now();
    let patched = b
        .api
        .patch(
            "/v1/links/one",
            Some(&key),
            json!({"destination": "https://example.com/two"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let took = wait_until(LONG, "A serving the patched link", || async {
        let reply = a.api.visit("/one", &[]).await;
        (location(&reply) == "https://example.com/two").then(|| t0.elapsed())
    })
    .await;
    eprintln!("scenario 2: PATCH through B served by A after {took:?}");
    assert!(took <= PROPAGATION, "propagation took {took:?}");

    // 2b. An endpoint deleted through C receives nothing clicked 1 s later.
    let beta = a.api.account("beta").await;
    let gone = endpoint(&a.api, &beta, rx.url("/gone"), json!(["link.clicked"])).await;
    endpoints.push(endpoint(&a.api, &beta, rx.url("/stay"), json!(["link.clicked"])).await);
    let created = Instant::now();
    link_everywhere(&a.api, &beta, "b1", "https://example.com/b", created).await;
    let nodes = [&a, &b, &c];
    for node in nodes {
        node.api.visit("/b1", &[]).await;
    }
    rx.wait_until(LONG, |got| {
        event_ids(got, "/gone").len() >= 3 && event_ids(got, "/stay").len() >= 3
    })
    .await;
    let deleted = c
        .api
        .delete(&format!("/v1/webhooks/{gone}"), Some(&beta))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let t0 = Instant::now();
    tokio::time::sleep_until(t0 + PROPAGATION).await;
    for i in 0..9 {
        nodes[i % 3].api.visit("/b1", &[]).await;
    }
    let got = rx
        .wait_until(LONG, |got| distinct(&event_ids(got, "/stay")) >= 12)
        .await;
    let to_gone = event_ids(&got, "/gone").len();
    eprintln!("scenario 2: deleted endpoint got {to_gone} deliveries (3 before the delete)");
    assert_eq!(to_gone, 3, "the deleted endpoint still received clicks");

    // 4. 300 clicks from one /24 round-robin: disabled at the one-node threshold.
    let created = Instant::now();
    link_everywhere(&a.api, &key, "hot", "https://example.com/hot", created).await;
    let mut pace = tokio::time::interval(Duration::from_millis(40));
    let (mut redirected, mut gone_in_a_row) = (0, 0);
    for i in 0..300 {
        pace.tick().await;
        let ip = format!("203.0.113.{}", i % 250);
        let reply = nodes[i % 3]
            .api
            .visit("/hot", &[("x-forwarded-for", &ip)])
            .await;
        match reply.status {
            StatusCode::FOUND => {
                redirected += 1;
                gone_in_a_row = 0;
            }
            StatusCode::GONE => gone_in_a_row += 1,
            other => panic!("click answered {other}"),
        }
        if gone_in_a_row == 3 {
            break;
        }
    }
    let incident = wait_until(LONG, "the fraud incident", || async {
        incidents_on(&c.api, &key, "hot").await.pop()
    })
    .await;
    assert_eq!(incident["action"], "disable_link", "{incident}");
    let clicks = incident["clicks"].as_u64().expect("clicks");
    eprintln!(
        "scenario 4: disabled at {clicks} clicks (one node: 101), {redirected} redirected in all"
    );
    assert!(
        (91..=111).contains(&clicks),
        "threshold off by more than 10%: {clicks}"
    );
    let hot = incidents_on(&c.api, &key, "hot").await.len();
    assert_eq!(hot, 1, "one incident, one disable");

    // 4b. Re-enabled through A: the range starts a fresh window on every node,
    // so 60 more clicks (160 in the 60 s window) leave the link enabled.
    let reply = a
        .api
        .patch("/v1/links/hot", Some(&key), json!({"disabled": false}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    tokio::time::sleep(PROPAGATION).await;
    for i in 0..60 {
        pace.tick().await;
        let ip = format!("203.0.113.{}", i % 250);
        let reply = nodes[i % 3]
            .api
            .visit("/hot", &[("x-forwarded-for", &ip)])
            .await;
        assert_eq!(reply.status, StatusCode::FOUND, "click {i} after re-enable");
    }
    // Two flush periods (heartbeat 200 ms) and the change feed's second.
    tokio::time::sleep(PROPAGATION).await;
    let link = c.api.get("/v1/links/hot", Some(&key)).await;
    assert_eq!(
        link.body["disabled"], false,
        "re-enabled link disabled again: {:?}",
        link.body
    );
    eprintln!("scenario 4b: re-enabled link took 60 more clicks from the range and stayed enabled");

    // 4c. A block_range link: the flood blocks its range on every node, one
    // incident, and the link keeps answering and counting everyone else.
    let body = json!({"destination": "https://example.com/s", "code": "shield",
                      "fraud_policy": "block_range"});
    a.api.link(&key, body).await;
    tokio::time::sleep(PROPAGATION).await;
    let from = |i: usize| format!("198.51.100.{}", i % 250);
    for i in 0..150 {
        pace.tick().await;
        let reply = nodes[i % 3]
            .api
            .visit("/shield", &[("x-forwarded-for", &from(i))])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FOUND,
            "click {i} on a block_range link"
        );
    }
    let incident = wait_until(LONG, "the block incident", || async {
        incidents_on(&c.api, &key, "shield").await.pop()
    })
    .await;
    assert_eq!(incident["action"], "block_range");
    tokio::time::sleep(PROPAGATION).await;
    let before = c.api.click_count(&key, "shield").await;
    for (i, node) in nodes.iter().enumerate() {
        let blocked = node
            .api
            .visit("/shield", &[("x-forwarded-for", &from(i))])
            .await;
        let other = node
            .api
            .visit("/shield", &[("x-forwarded-for", "192.0.2.1")])
            .await;
        assert_eq!(
            (blocked.status, other.status),
            (StatusCode::FOUND, StatusCode::FOUND)
        );
    }
    let after = c.api.click_count(&key, "shield").await;
    assert_eq!(
        after,
        before + 3,
        "only the other range's clicks counted, on every node"
    );
    let shield = incidents_on(&c.api, &key, "shield").await.len();
    assert_eq!(shield, 1, "one incident");
    eprintln!(
        "scenario 4c: range blocked on every node at {} clicks",
        incident["clicks"]
    );

    // 5. A link expiring with three nodes up: one link.expired, one event_id.
    endpoints.push(endpoint(&b.api, &key, rx.url("/expired"), json!(["link.expired"])).await);
    let soon = |secs| (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339();
    tokio::time::sleep(PROPAGATION).await;
    for (code, secs) in [("exp", 2), ("exp2", 3)] {
        a.api
            .link(
                &key,
                json!({"destination": "https://example.com/e", "code": code, "expires_at": soon(secs)}),
            )
            .await;
    }
    let code_of = |r: &Received| r.json()["data"]["link"]["code"].as_str().map(String::from);
    // The later one in: the earlier one's duplicate would be in by now too.
    let got = rx
        .wait_until(LONG, |got| {
            got.iter()
                .filter(|r| r.path == "/expired")
                .any(|r| code_of(r).as_deref() == Some("exp2"))
        })
        .await;
    let expired: Vec<String> = got
        .iter()
        .filter(|r| r.path == "/expired" && code_of(r).as_deref() == Some("exp"))
        .map(Received::event_id)
        .collect();
    eprintln!(
        "scenario 5: link.expired deliveries for one link: {}",
        expired.len()
    );
    assert_eq!(expired.len(), 1, "{expired:?}");

    // 3. A SIGKILLed with deliveries pending to a receiver that is down.
    let down = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let gamma = a.api.account("gamma").await;
    let mut hooks: HashMap<Uuid, String> = HashMap::new();
    // Enough endpoints that A (by rendezvous over the three ids) owns two.
    loop {
        let on_a = hooks.keys().filter(|e| owner(**e) == a.id).count();
        if (on_a >= 2 && hooks.len() >= 3) || hooks.len() >= 12 {
            break;
        }
        let path = format!("/k{}", hooks.len());
        let id = endpoint(
            &a.api,
            &gamma,
            format!("http://{down}{path}"),
            json!(["link.clicked"]),
        )
        .await;
        hooks.insert(id, path);
        endpoints.push(id);
    }
    let on_a = hooks.keys().filter(|e| owner(**e) == a.id).count();
    assert!(on_a >= 1, "no endpoint prefers A among {}", hooks.len());
    // One lease per endpoint, and the expiry singleton.
    let expected = endpoints.len() as f64 + 1.0;
    wait_until(LONG, "every lease taken", || async {
        (total_leases(&nodes).await == expected).then_some(())
    })
    .await;
    a.api
        .link(
            &gamma,
            json!({"destination": "https://example.com/g", "code": "g1"}),
        )
        .await;
    for i in 0..10 {
        let node = if i % 2 == 0 { &b } else { &c };
        node.api.visit("/g1", &[]).await;
    }
    wait_until(LONG, "A trying its deliveries", || async {
        let retries = metric(&a.api, "relurl_webhook_retries_scheduled_total").await;
        (retries >= on_a as f64).then_some(())
    })
    .await;
    let handovers_before = b.handovers().await + c.handovers().await;
    a.kill();
    let killed = Instant::now();
    let rx_down = Receiver::start_on(down).await;
    let survivors = [&b, &c];
    let takeover = wait_until(LONG, "B and C holding every lease", || async {
        let taken = b.handovers().await + c.handovers().await - handovers_before;
        (taken >= on_a as f64 && total_leases(&survivors).await == expected)
            .then(|| killed.elapsed())
    })
    .await;
    let want = hooks.len() * 10;
    let got = rx_down
        .wait_until(LONG, |got| {
            hooks
                .values()
                .map(|p| distinct(&event_ids(got, p)))
                .sum::<usize>()
                >= want
        })
        .await;
    let all_in = killed.elapsed();
    let deliveries = got.len();
    eprintln!(
        "scenario 3: SIGKILL of A ({on_a} of {} endpoints): leases taken over after {takeover:?}, \
         all {want} events delivered after {all_in:?} ({deliveries} deliveries)",
        hooks.len()
    );

    // 6. A rejoins (same node id) and gets its share back.
    let rejoined = Instant::now();
    let a_config = a.config.clone();
    drop(a);
    let a = Node::start(a_config, ids[0]).await;
    let share = endpoints.iter().filter(|e| owner(**e) == a.id).count() as f64;
    let nodes = [&a, &b, &c];
    let back = wait_until(LONG, "A holding its share again", || async {
        let mine = a.leases().await;
        (mine >= share && total_leases(&nodes).await == expected).then(|| rejoined.elapsed())
    })
    .await;
    eprintln!(
        "scenario 6: A back with {} leases ({share} endpoints prefer it, maybe the expiry lease) \
         {back:?} after its restart began",
        a.leases().await
    );

    // A graceful stop (SIGTERM) hands B's leases over at once, not after the TTL.
    let mut b = b;
    let stopping = Instant::now();
    let pid = b.child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(term.expect("kill -TERM").success());
    let mut child = std::mem::replace(&mut b.child, Command::new("true").spawn().expect("true"));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait task")
        .expect("wait");
    assert!(status.success(), "B exited with {status}");
    let remaining = [&a, &c];
    let moved = wait_until(LONG, "A and C holding every lease", || async {
        (total_leases(&remaining).await == expected).then(|| stopping.elapsed())
    })
    .await;
    eprintln!("graceful stop of B: its leases held by A and C {moved:?} after SIGTERM");

    drop((a, b, c));
    drop_keyspace(&cql_node, &keyspace).await;
}

async fn drop_keyspace(node: &str, keyspace: &str) {
    let Ok(session) = scylla::client::session_builder::SessionBuilder::new()
        .known_node(node)
        .build()
        .await
    else {
        return;
    };
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await;
}
