//! Per-click work inside the shards: enrichment, and one fraud window update.

use std::{net::IpAddr, sync::Arc};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use relurl::{
    clicks::enrich::{GeoIp, RawClick, enrich},
    fraud::window::{FraudWindows, WindowKey},
    net::{Cidr, ip_range},
};

fn enrichment(c: &mut Criterion) {
    let geo = GeoIp::built_in();
    let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().expect("cidr")];
    let raw = RawClick {
        at: Utc::now(),
        peer: "10.1.2.3".parse().expect("ip"),
        user_agent: Box::from(
            &b"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"[..],
        ),
        referrer: Box::from(&b"https://t.co/abc"[..]),
        forwarded_for: Box::from(&b"203.0.113.7, 10.0.0.9"[..]),
    };
    c.bench_function("enrich_click", |b| {
        b.iter(|| enrich("abc1234", &raw, &trusted, &geo))
    });
}

fn fraud_window(c: &mut Criterion) {
    let mut windows = FraudWindows::new(10, 200, 1_000_000);
    let codes: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("c{i}"))).collect();
    let ips: Vec<IpAddr> = (0..256u32)
        .map(|i| IpAddr::from([198, 51, (i % 256) as u8, 7]))
        .collect();
    let mut i = 0usize;
    let mut now = 1_700_000_000u64;
    c.bench_function("fraud_window_update", |b| {
        b.iter(|| {
            i += 1;
            if i.is_multiple_of(10_000) {
                now += 1;
            }
            let key = WindowKey {
                code: codes[i % codes.len()].clone(),
                range: ip_range(ips[i % ips.len()], 24, 48),
            };
            windows.observe(key, now)
        })
    });
}

criterion_group!(benches, enrichment, fraud_window);
criterion_main!(benches);
