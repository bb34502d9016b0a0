//! Shared by every integration test binary (each does `mod common;`): a real
//! relurl server on an ephemeral port with a temp data dir and a small HTTP
//! client to talk to it, metric readings from its `/metrics`, and waiting on a
//! condition with a deadline. Webhook receivers, the CQL node and MaxMind files
//! live in the submodules.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod cql;
pub mod mmdb;
pub mod node;
pub mod process;
pub mod receiver;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use relurl::{app, config::Config};
use serde_json::{Value, json};

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub running: Option<app::Running>,
    client: Client<HttpConnector, Full<Bytes>>,
    _tmp: Option<tempfile::TempDir>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn error_field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

pub fn config(dir: &std::path::Path, extra: &str) -> Config {
    use figment::providers::{Format, Serialized, Toml};
    // Two documents merged, so `extra` may add keys to [auth] or [store] too.
    let base = format!(
        "[auth]\nadmin_token = \"{ADMIN}\"\n[store]\npath = \"{}\"\n",
        dir.display()
    );
    let figment =
        figment::Figment::from(Serialized::defaults(relurl::config::RawConfig::default()))
            .merge(Toml::string(&base))
            .merge(Toml::string(extra));
    relurl::config::from_figment(figment).expect("test config is valid")
}

impl TestServer {
    pub async fn start(extra: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::start_in(dir, extra).await;
        server._tmp = Some(tmp);
        server
    }

    /// Starts on an existing data dir (restart tests).
    pub async fn start_in(dir: PathBuf, extra: &str) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let config = config(&dir, extra);
        let running = app::start(config, listener).await.expect("server starts");
        TestServer {
            addr: running.local_addr,
            dir,
            running: Some(running),
            client: Client::builder(TokioExecutor::new()).build_http(),
            _tmp: None,
        }
    }

    /// A client for a server running elsewhere (a child process).
    pub fn attach(addr: SocketAddr) -> TestServer {
        TestServer {
            addr,
            dir: PathBuf::new(),
            running: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _tmp: None,
        }
    }

    /// Graceful stop; the data dir stays (owned by whoever created it).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops and starts again on the same data dir.
    pub async fn restart(mut self, extra: &str) -> TestServer {
        self.stop().await;
        let tmp = self._tmp.take();
        let mut next = Self::start_in(self.dir.clone(), extra).await;
        next._tmp = tmp;
        next
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("response within 30s")
            .expect("request succeeds");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(self.url(path));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .expect("request builds");
        self.send(request).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let body = body.map(|b| Bytes::from(b.to_string()));
        self.raw(method, path, token, &[], body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// A new account; returns its API key.
    pub async fn account(&self, name: &str) -> String {
        let reply = self
            .post("/v1/accounts", Some(ADMIN), json!({ "name": name }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["api_key"].as_str().expect("api_key").to_string()
    }

    pub async fn link(&self, key: &str, body: Value) -> Value {
        let reply = self.post("/v1/links", Some(key), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body
    }

    /// `GET /{code}` with headers, as a browser would.
    pub async fn visit(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.raw(Method::GET, path, None, headers, None).await
    }

    pub async fn click_count(&self, key: &str, code: &str) -> u64 {
        let reply = self.get(&format!("/v1/links/{code}"), Some(key)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["click_count"].as_u64().expect("click_count")
    }

    pub async fn metrics_text(&self) -> String {
        let reply = self.get("/metrics", None).await;
        match reply.body {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

/// The value of a counter/gauge line in Prometheus text (summing matching series).
pub fn metric_value(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let series = l.split_whitespace().next().unwrap_or("");
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name
                && labels
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .all(|lab| rest.contains(lab))
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum()
}

/// One series of the server's own `/metrics`, written `name` or
/// `name{label="value",...}` (matching series summed; 0 when absent). The
/// recorder is process-global, so tests read it before and after an action and
/// assert on the difference, never on the absolute value.
pub async fn metric(server: &TestServer, series: &str) -> f64 {
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}')),
        None => (series, ""),
    };
    metric_value(&server.metrics_text().await, name, labels)
}

/// Asks `check` until it gives an answer, for state the server settles in the
/// background; panics naming `what` if none came `within`.
pub async fn wait_until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(answer) = check().await {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_until`] with a deadline generous enough for a busy machine.
pub async fn eventually<T, F, Fut>(check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_until(Duration::from_secs(30), "a condition", check).await
}
