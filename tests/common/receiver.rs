//! A real HTTP receiver on loopback: records every webhook it gets and answers
//! with the behaviour the test scripts (status, Retry-After, or a slow answer).

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    /// 429 or 503 with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// Answers 200 only after this long (past the sender's timeout).
    Slow(Duration),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub path: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("missing header {name}"))
    }

    pub fn event_id(&self) -> String {
        self.json()["event_id"].as_str().unwrap().to_string()
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    arrived: Notify,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Answer::Status(200)),
            arrived: Notify::new(),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let shared = shared.clone();
                            async move {
                                let path = request.uri().path().to_string();
                                let headers = request.headers().clone();
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let answer = shared
                                    .script
                                    .lock()
                                    .unwrap()
                                    .pop_front()
                                    .unwrap_or_else(|| shared.default.lock().unwrap().clone());
                                shared.received.lock().unwrap().push(Received {
                                    at: Instant::now(),
                                    headers,
                                    body,
                                    path,
                                });
                                shared.arrived.notify_waiters();
                                let mut response =
                                    Response::new(Full::new(Bytes::from_static(b"ok")));
                                match answer {
                                    Answer::Status(s) => {
                                        *response.status_mut() = StatusCode::from_u16(s).unwrap()
                                    }
                                    Answer::RetryAfter(s, secs) => {
                                        *response.status_mut() = StatusCode::from_u16(s).unwrap();
                                        response.headers_mut().insert("retry-after", secs.into());
                                    }
                                    Answer::Slow(d) => tokio::time::sleep(d).await,
                                }
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next answers, in order; afterwards the default.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    pub fn answer_by_default(&self, answer: Answer) {
        *self.shared.default.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits (on arrivals, not a sleep loop) until `n` requests came in.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "only {} of {n} webhooks arrived within {within:?}",
                    self.received().len()
                );
            }
        }
    }

    /// Waits until requests satisfying `done` have arrived.
    pub async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.received();
            if done(&got) {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "condition not met within {within:?}; got {} webhooks",
                    got.len()
                );
            }
        }
    }
}
