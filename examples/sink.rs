//! A webhook sink for load tests: answers every POST with 204 at once, counts
//! deliveries, and measures click→webhook latency from each payload's
//! `timestamp` (set when the event was created). `GET /stats` reports; `DELETE
//! /stats` starts over. Memory stays bounded on long runs: latency percentiles
//! come from a uniform sample of at most `MAX_SAMPLES` deliveries, and at most
//! `MAX_IDS` event ids are remembered for spotting duplicates (past that, new
//! ids count as distinct and as `untracked`).
//!
//!   cargo run --release --example sink -- 127.0.0.1:9999

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Response, StatusCode};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

/// Latencies kept for the percentiles (a uniform sample past this).
const MAX_SAMPLES: usize = 1_000_000;
/// Event ids remembered (16 bytes each) for telling duplicates from new events.
const MAX_IDS: usize = 10_000_000;

#[derive(Default)]
struct Stats {
    deliveries: u64,
    latencies_ms: Vec<f64>,
    /// Latencies offered to the sample so far, and the largest.
    latencies_seen: u64,
    max_ms: f64,
    first: Option<Instant>,
    last: Option<Instant>,
    ids: std::collections::HashSet<u128>,
    /// Events whose id was not remembered: `ids` was full, or the id not a UUID.
    untracked: u64,
    rng: u64,
}

impl Stats {
    /// Reservoir sampling: every latency seen has the same chance to be kept.
    fn add_latency(&mut self, ms: f64) {
        self.latencies_seen += 1;
        self.max_ms = self.max_ms.max(ms);
        if self.latencies_ms.len() < MAX_SAMPLES {
            self.latencies_ms.push(ms);
            return;
        }
        // xorshift64: enough randomness for a sample, no dependency.
        self.rng = if self.rng == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            self.rng
        };
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = self.rng % self.latencies_seen;
        if let Some(kept) = self.latencies_ms.get_mut(slot as usize) {
            *kept = ms;
        }
    }

    fn add_id(&mut self, id: &str) {
        match u128::from_str_radix(&id.replace('-', ""), 16) {
            Ok(id) if self.ids.len() < MAX_IDS || self.ids.contains(&id) => {
                self.ids.insert(id);
            }
            _ => self.untracked += 1,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(stats: &Stats) -> String {
    let mut sorted = stats.latencies_ms.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let span = match (stats.first, stats.last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let n = stats.deliveries;
    format!(
        "{{\"deliveries\":{n},\"distinct_events\":{},\"untracked\":{},\"span_secs\":{span:.3},\"per_sec\":{:.0},\"latency_ms\":{{\"p50\":{:.2},\"p90\":{:.2},\"p99\":{:.2},\"max\":{:.2}}}}}\n",
        stats.ids.len() as u64 + stats.untracked,
        stats.untracked,
        if span > 0.0 { n as f64 / span } else { 0.0 },
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        percentile(&sorted, 0.99),
        stats.max_ms,
    )
}

/// The `"event_id"` and `"timestamp"` string fields, without a full parse.
fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = body.find(&key)? + key.len();
    let len = body[start..].find('"')?;
    Some(&body[start..start + len])
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("sink on {addr}");
    let stats = Arc::new(Mutex::new(Stats::default()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let stats = stats.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let stats = stats.clone();
                    async move {
                        let method = request.method().clone();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                        let response = match method {
                            Method::POST => {
                                let now = Instant::now();
                                let text = String::from_utf8_lossy(&body);
                                if let Some(ts) = field(&text, "timestamp")
                                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                {
                                    let ms = (chrono::Utc::now() - ts.with_timezone(&chrono::Utc))
                                        .num_microseconds()
                                        .unwrap_or(0)
                                        as f64
                                        / 1000.0;
                                    stats.add_latency(ms);
                                }
                                stats.deliveries += 1;
                                if let Some(id) = field(&text, "event_id") {
                                    stats.add_id(id);
                                }
                                stats.first.get_or_insert(now);
                                stats.last = Some(now);
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NO_CONTENT;
                                r
                            }
                            Method::DELETE => {
                                *stats = Stats::default();
                                Response::new(Full::new(Bytes::from_static(b"reset\n")))
                            }
                            _ => Response::new(Full::new(Bytes::from(report(&stats)))),
                        };
                        Ok::<_, Infallible>(response)
                    }
                },
            );
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
