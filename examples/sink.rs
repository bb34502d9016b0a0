//! A webhook sink for load tests: answers every POST with 204 at once, counts
//! deliveries, and measures click→webhook latency from each payload's
//! `timestamp` (set when the event was created). `GET /stats` reports; `DELETE
//! /stats` starts over.
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

#[derive(Default)]
struct Stats {
    latencies_ms: Vec<f64>,
    first: Option<Instant>,
    last: Option<Instant>,
    ids: std::collections::HashSet<String>,
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
    let n = sorted.len();
    format!(
        "{{\"deliveries\":{n},\"distinct_events\":{},\"span_secs\":{span:.3},\"per_sec\":{:.0},\"latency_ms\":{{\"p50\":{:.2},\"p90\":{:.2},\"p99\":{:.2},\"max\":{:.2}}}}}\n",
        stats.ids.len(),
        if span > 0.0 { n as f64 / span } else { 0.0 },
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(0.0),
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
                                    stats.latencies_ms.push(ms);
                                }
                                if let Some(id) = field(&text, "event_id") {
                                    stats.ids.insert(id.to_string());
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
