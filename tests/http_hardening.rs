//! The HTTP front as a hostile client sees it: slow and surplus connections,
//! oversized heads and bodies, garbage forwarding headers, odd paths and
//! queries. Most requests are written byte for byte over TCP, since a
//! well-behaved client library will not send them.

mod common;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use common::{ADMIN, TestServer, eventually, metric, wait_until};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// An answer read off the wire until the server closed the connection.
struct Wire {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn parse_wire(bytes: &[u8]) -> Wire {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    Wire {
        status,
        head,
        body: bytes[split + 4..].to_vec(),
    }
}

/// Sends `head` then `body` (written while the answer is read, as a real
/// client would) and reads the answer to the end. `head` must ask for
/// `Connection: close`.
async fn exchange(addr: SocketAddr, head: Vec<u8>, body: Vec<u8>) -> Wire {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        write.write_all(&head).await?;
        for chunk in body.chunks(64 * 1024) {
            write.write_all(chunk).await?;
        }
        write.flush().await?;
        Ok::<_, std::io::Error>(write)
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut answer))
        .await
        .expect("answer within 60s")
        .expect("read answer");
    let _ = writer.await;
    parse_wire(&answer)
}

async fn get_raw(addr: SocketAddr, target: &[u8]) -> Wire {
    let mut head = b"GET ".to_vec();
    head.extend_from_slice(target);
    head.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    exchange(addr, head, Vec::new()).await
}

async fn setup(extra: &str) -> (TestServer, String, String) {
    let server = TestServer::start(extra).await;
    let key = server.account("hardening").await;
    let link = server
        .link(
            &key,
            json!({ "destination": "https://example.com/landing" }),
        )
        .await;
    let code = link["code"].as_str().expect("code").to_string();
    (server, key, code)
}

// --- item 1: slow and surplus connections ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_cut_while_redirects_go_on() {
    // Fraud detection off: the steady redirects all come from one address.
    let (server, _key, code) =
        setup("[server]\nheader_read_timeout = \"2s\"\n[fraud]\nenabled = false\n").await;
    let addr = server.addr;
    const HEAD: &[u8] = b"GET /slowloris HTTP/1.1\r\nHost: t\r\nX-Pad: aaaaaaaaaaaaaaaa\r\n\r\n";
    // Each sends one header byte a second until the server closes on it.
    let slow: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                let mut buf = [0u8; 256];
                for (sent, byte) in HEAD.iter().enumerate() {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return (sent, true);
                    }
                    match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
                    {
                        Err(_) => continue,
                        Ok(Ok(0) | Err(_)) => return (sent + 1, true),
                        // An answer: the whole head got through.
                        Ok(Ok(_)) => return (sent + 1, false),
                    }
                }
                (HEAD.len(), false)
            })
        })
        .collect();
    let mut redirects = 0;
    while slow.iter().any(|t| !t.is_finished()) {
        let reply = server.visit(&format!("/{code}"), &[]).await;
        assert_eq!(reply.status, StatusCode::FOUND, "redirects go on");
        redirects += 1;
    }
    assert!(redirects > 0);
    for task in slow {
        let (sent, cut) = task.await.expect("slow client");
        assert!(cut, "a slow connection was answered instead of cut");
        assert!(
            sent < HEAD.len(),
            "cut only after {sent} bytes, the whole head"
        );
    }
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed_while_earlier_ones_work() {
    let server = TestServer::start("[server]\nmax_connections = 3\n").await;
    let body = br#"{"name":"held"}"#;
    let head = format!(
        "POST /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Three connections, each holding a request open with half its body sent.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..5]).await.unwrap();
        held.push(stream);
    }
    // The fourth is closed without an answer.
    let mut extra = TcpStream::connect(server.addr).await.expect("connect");
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), extra.read_to_end(&mut buf))
        .await
        .expect("closed within 30s");
    assert!(
        read.is_err() || buf.is_empty(),
        "a connection past the cap was served: {:?}",
        String::from_utf8_lossy(&buf)
    );
    // The earlier ones finish their requests.
    for mut stream in held {
        stream.write_all(&body[5..]).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert_eq!(parse_wire(&answer).status, 201);
    }
    // Their slots come back.
    wait_until(
        Duration::from_secs(30),
        "a free connection slot",
        || async {
            let stream = TcpStream::connect(server.addr).await.ok()?;
            drop(stream);
            let mut stream = TcpStream::connect(server.addr).await.ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.ok()?;
            (!answer.is_empty() && parse_wire(&answer).status == 200).then_some(())
        },
    )
    .await;
    assert!(metric(&server, "relurl_http_connections_refused_total").await >= 1.0);
}

// --- item 3: memory per click ---------------------------------------------

#[tokio::test]
async fn huge_headers_are_stored_truncated() {
    let (server, key, code) = setup("").await;
    let agent = "u".repeat(5000);
    let referrer = format!("https://r.example/{}", "x".repeat(5000));
    let reply = server
        .visit(
            &format!("/{code}"),
            &[("user-agent", &agent), ("referer", &referrer)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    // The webhook payload is built from this same stored click.
    let click = eventually(|| async {
        let reply = server
            .get(&format!("/v1/links/{code}/clicks"), Some(&key))
            .await;
        reply.body["items"].get(0).cloned()
    })
    .await;
    assert_eq!(click["user_agent"].as_str().unwrap().len(), 512);
    assert_eq!(click["referrer"].as_str().unwrap().len(), 2048);
    assert_eq!(click["referrer_host"], "r.example");
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// 3,000 queued clicks each carrying a 14 KB head. Kept as owned truncated
/// copies they hold about 2.6 KB each (8 MB); pinning their request heads
/// would hold at least 14 KB each (42 MB). The server is a child process so
/// its VmRSS is its own; the bound sits between the two.
#[tokio::test]
async fn a_flood_of_large_headers_keeps_server_memory_bounded() {
    const CLICKS: usize = 3000;
    const BOUND: u64 = 24 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relurl.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nadmin_token = \"{ADMIN}\"\n\
             [store]\npath = \"{}\"\n\
             [redirect]\nflush_interval = \"1m\"\nflush_max_batch = 100000\nshard_queue_limit = 4096\n\
             [fraud]\nenabled = false\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (mut child, addr) = common::process::serve(&config);
    let server = TestServer::attach(addr);
    let key = server.account("flood").await;
    let link = server
        .link(&key, json!({ "destination": "https://example.com/" }))
        .await;
    let code = link["code"].as_str().unwrap().to_string();
    for _ in 0..50 {
        server.get("/healthz", None).await;
    }
    let before = rss_bytes(child.id());
    let agent = "a".repeat(10_000);
    let referrer = format!("https://r.example/{}", "b".repeat(4_000));
    let path = format!("/{code}");
    let per_task = CLICKS / 4;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (agent, referrer, path) = (agent.clone(), referrer.clone(), path.clone());
            tokio::spawn(async move {
                let server = TestServer::attach(addr);
                for _ in 0..per_task {
                    let reply = server
                        .visit(&path, &[("user-agent", &agent), ("referer", &referrer)])
                        .await;
                    assert_eq!(reply.status, StatusCode::FOUND);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Every click is still queued: the shards write only once a minute here.
    let received = metric(&server, "relurl_clicks_received_total").await;
    let persisted = metric(&server, "relurl_clicks_persisted_total").await;
    assert_eq!((received, persisted), (CLICKS as f64, 0.0));
    let grown = rss_bytes(child.id()).saturating_sub(before);
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "server RSS grew by {} KiB for {CLICKS} queued clicks",
        grown >> 10
    );
    assert!(
        grown < BOUND,
        "server RSS grew by {} MiB for {CLICKS} queued clicks (bound {} MiB)",
        grown >> 20,
        BOUND >> 20
    );
}

// --- item 2: X-Forwarded-For ----------------------------------------------

async fn visit_with(server: &TestServer, path: &str, xff: &[HeaderValue]) -> StatusCode {
    let mut request = Request::builder().method(Method::GET).uri(server.url(path));
    for value in xff {
        request = request.header("x-forwarded-for", value.clone());
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    server.send(request).await.status
}

#[tokio::test]
async fn garbage_forwarded_for_answers_302_and_the_click_counts() {
    let (server, key, code) = setup("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    let path = format!("/{code}");
    let invalid_utf8 = HeaderValue::from_bytes(b"\xff\xfe\xfd, 203.0.113.7").unwrap();
    let huge = HeaderValue::from_str(&"1.2.3.4, ".repeat(1300)).unwrap();
    let junk = HeaderValue::from_static("not an address, ;;; [::1, 999.1.1.1");
    let many: Vec<HeaderValue> = (0..50)
        .map(|i| HeaderValue::from_str(&format!("junk{i}")).unwrap())
        .collect();
    let cases: [&[HeaderValue]; 4] = [&[invalid_utf8], &[huge], &[junk], &many];
    for xff in cases {
        assert_eq!(visit_with(&server, &path, xff).await, StatusCode::FOUND);
    }
    eventually(|| async { (server.click_count(&key, &code).await == 4).then_some(()) }).await;
}

#[tokio::test]
async fn every_forwarded_for_line_is_read_behind_a_trusted_proxy() {
    let (server, key, code) = setup("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    // Two lines are one list: the client is the rightmost untrusted entry.
    let lines = [
        HeaderValue::from_static("198.51.100.1"),
        HeaderValue::from_static("203.0.113.7"),
    ];
    assert_eq!(
        visit_with(&server, &format!("/{code}"), &lines).await,
        StatusCode::FOUND
    );
    let ip = eventually(|| async {
        let reply = server
            .get(&format!("/v1/links/{code}/clicks"), Some(&key))
            .await;
        reply.body["items"][0]["ip"].as_str().map(str::to_string)
    })
    .await;
    assert_eq!(ip, "203.0.113.7");
}

#[tokio::test]
async fn forwarded_for_from_a_private_peer_without_trusted_proxies_is_counted() {
    let (server, key, code) = setup("").await;
    let series = "relurl_clicks_forwarded_for_ignored_total";
    let before = metric(&server, series).await;
    let xff = [HeaderValue::from_static("203.0.113.7")];
    assert_eq!(
        visit_with(&server, &format!("/{code}"), &xff).await,
        StatusCode::FOUND
    );
    eventually(|| async { (server.click_count(&key, &code).await == 1).then_some(()) }).await;
    eventually(|| async { (metric(&server, series).await > before).then_some(()) }).await;
}

// --- item 10: HTTP correctness --------------------------------------------

#[tokio::test]
async fn the_appended_query_is_percent_encoded_in_location() {
    let (server, _key, code) = setup("").await;
    let cases: [(&[u8], &str); 3] = [
        ("?q=é✓".as_bytes(), "?q=%C3%A9%E2%9C%93"),
        (b"?a=%", "?a=%25"),
        (b"?a={}|^`", "?a=%7B%7D%7C%5E%60"),
    ];
    for (query, encoded) in cases {
        let mut target = format!("/{code}").into_bytes();
        target.extend_from_slice(query);
        let reply = get_raw(server.addr, &target).await;
        assert_eq!(reply.status, 302);
        assert_eq!(
            reply.header("location"),
            Some(format!("https://example.com/landing{encoded}").as_str())
        );
    }
}

#[tokio::test]
async fn oversized_heads_get_the_json_error_shape() {
    let (server, _key, code) = setup("").await;
    let big = "h".repeat(20_000);
    let reply = server
        .visit(&format!("/{code}"), &[("x-big", big.as_str())])
        .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(reply.error_code(), "headers_too_large");
    let long = format!("/{code}?q={}", "q".repeat(9_000));
    let reply = server.visit(&long, &[]).await;
    assert_eq!(reply.status, StatusCode::URI_TOO_LONG);
    assert_eq!(reply.error_code(), "uri_too_long");
}

#[tokio::test]
async fn other_methods_on_a_code_are_405_with_allow() {
    let (server, _key, code) = setup("").await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let reply = server
            .raw(method.clone(), &format!("/{code}"), None, &[], None)
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        assert_eq!(reply.error_code(), "method_not_allowed");
    }
}

#[tokio::test]
async fn percent_encoded_unreserved_characters_in_a_code_are_decoded() {
    let server = TestServer::start("").await;
    let key = server.account("pct").await;
    server
        .link(
            &key,
            json!({ "destination": "https://example.com/q", "code": "qtest" }),
        )
        .await;
    let reply = server.visit("/%71test", &[]).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.header("location"), Some("https://example.com/q"));
    for other in ["/%2Fqtest", "/qtest%20", "/%7"] {
        assert_eq!(
            server.visit(other, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{other}"
        );
    }
}

// --- 413 on every write route ---------------------------------------------

#[tokio::test]
async fn two_megabyte_bodies_get_413_on_every_write_route() {
    let (server, key, code) = setup("[webhooks]\nallow_private_targets = true\n").await;
    let hook = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({ "url": "http://127.0.0.1:9/hook", "events": ["*"] }),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{:?}", hook.body);
    let id = hook.body["id"].as_str().unwrap().to_string();
    let event = uuid::Uuid::now_v7();
    let routes = [
        ("POST", "/v1/accounts".to_string(), ADMIN.to_string()),
        ("POST", "/v1/links".into(), key.clone()),
        ("PATCH", format!("/v1/links/{code}"), key.clone()),
        ("POST", "/v1/webhooks".into(), key.clone()),
        ("PATCH", format!("/v1/webhooks/{id}"), key.clone()),
        (
            "POST",
            format!("/v1/webhooks/{id}/rotate-secret"),
            key.clone(),
        ),
        ("POST", format!("/v1/webhooks/{id}/test"), key.clone()),
        (
            "POST",
            format!("/v1/webhooks/{id}/deliveries/{event}/retry"),
            key.clone(),
        ),
    ];
    let mut body = br#"{"name":""#.to_vec();
    body.resize(body.len() + (2 << 20), b'a');
    body.extend_from_slice(br#""}"#);
    for (method, path, token) in &routes {
        for chunked in [false, true] {
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_string()
            } else {
                format!("Content-Length: {}", body.len())
            };
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
            );
            let payload = if chunked {
                let mut out = Vec::with_capacity(body.len() + 1024);
                for chunk in body.chunks(64 * 1024) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                out
            } else {
                body.clone()
            };
            let reply = exchange(server.addr, head.into_bytes(), payload).await;
            assert_eq!(reply.status, 413, "{method} {path} chunked={chunked}");
            assert_eq!(
                reply.json()["error"]["code"],
                "payload_too_large",
                "{method} {path} chunked={chunked}"
            );
        }
    }
}
