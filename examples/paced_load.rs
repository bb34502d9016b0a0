//! A paced load generator: sends GET requests at a fixed rate (unlike wrk,
//! which sends as fast as it can), so latency is measured below saturation.
//!
//!   cargo run --release --example paced_load -- http://127.0.0.1:8080/code 2000 10
//!   (url, requests per second, seconds)

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url: hyper::Uri = args
        .next()
        .and_then(|u| u.parse().ok())
        .expect("usage: paced_load URL RATE SECONDS");
    let rate: u64 = args.next().and_then(|r| r.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<Duration>>();
    let started = Instant::now();
    let total = rate * secs;
    // Ticks of 1 ms, each sending its share, so the pace stays even.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due.min(total) {
            sent += 1;
            let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let ok = match client.get(url).await {
                    Ok(r) => r.into_body().collect().await.is_ok(),
                    Err(_) => false,
                };
                let _ = tx.send(ok.then(|| t.elapsed()));
            });
        }
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some(r) = rx.recv().await {
        match r {
            Some(d) => latencies.push(d.as_secs_f64() * 1000.0),
            None => errors += 1,
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "sent {total} in {:.2}s ({:.0}/s), errors {errors}, redirect latency ms p50 {:.3} p99 {:.3}",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64(),
        p(0.5),
        p(0.99)
    );
}
