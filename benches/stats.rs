//! Stats over a month: an embedded store holding the rollups of 1,000,000
//! clicks spread over 30 days (one link, and its account), queried for 30 days
//! by day as the stats routes do (store read, then hour → day summary).
//! Goal: under 50 ms per query.

use std::sync::Arc;

use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use relurl::{
    domain::Link,
    http::stats::{StatsParams, summarize, window},
    store::{ClickBatch, Dim, EmbeddedStore, HourRollup, SharedStore, StatsScope, rollup::hour_of},
};
use uuid::Uuid;

const CLICKS: u64 = 1_000_000;
const HOURS: i64 = 30 * 24;

/// One hour of a busy link: 60 countries, 4 devices, 12 browsers, 10 systems,
/// the referrer top-100 plus direct and other.
fn hour_rollup(hour: i64, clicks: u64) -> HourRollup {
    let mut r = HourRollup::new(hour);
    let bots = clicks / 20;
    r.add(Dim::Human, "", clicks - bots);
    r.add(Dim::Bot, "", bots);
    let spread = |r: &mut HourRollup, dim: Dim, names: usize, prefix: &str| {
        let each = clicks / names as u64;
        for i in 0..names {
            let extra = if i == 0 {
                clicks - each * names as u64
            } else {
                0
            };
            r.add(dim, &format!("{prefix}{i}"), each + extra);
        }
    };
    spread(&mut r, Dim::Country, 60, "C");
    spread(&mut r, Dim::Device, 4, "device-");
    spread(&mut r, Dim::Browser, 12, "browser-");
    spread(&mut r, Dim::Os, 10, "os-");
    // Hosts change over the month, so the month holds far more than 100.
    let offset = (hour / 24) as usize * 20;
    let each = clicks / 102;
    for i in 0..100 {
        r.add(
            Dim::Referrer,
            &format!("host{}.example.com", i + offset),
            each,
        );
    }
    r.add(Dim::Referrer, "(direct)", each);
    r.add(Dim::Referrer, "(other)", clicks - each * 101);
    r
}

fn stats(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let now = Utc::now();
    let account = Uuid::now_v7();
    let link = Link {
        code: "bench".into(),
        account_id: account,
        destination: "https://example.com".into(),
        redirect_status: 302,
        created_at: now - Duration::days(31),
        updated_at: now,
        expires_at: None,
        disabled: false,
        disabled_reason: None,
        tags: Vec::new(),
        fraud_policy: None,
    };
    let link_scope = StatsScope::of_link(&link);
    let account_scope = StatsScope::Account(account);
    let last = hour_of(now);
    runtime.block_on(async {
        store.insert_link(&link, &[]).await.expect("link");
        let per_hour = CLICKS / HOURS as u64;
        // A day of hours per batch, each hour on the link and the account.
        for day in 0..30 {
            let mut rollups = Vec::new();
            for h in 0..24 {
                let hour = last - HOURS + 1 + day * 24 + h;
                let clicks = per_hour + u64::from(day == 0 && h == 0) * (CLICKS % HOURS as u64);
                let r = hour_rollup(hour, clicks);
                rollups.push((link_scope.clone(), r.clone()));
                rollups.push((account_scope.clone(), r));
            }
            let batch = ClickBatch {
                rollups,
                ..ClickBatch::default()
            };
            store.record_clicks(&batch).await.expect("rollups");
        }
    });
    let w = window(&StatsParams::default(), now).expect("window");
    let total = runtime.block_on(async {
        let rollups = store
            .stats(&link_scope, w.from_hour, w.to_hour)
            .await
            .unwrap();
        summarize(w, &rollups)["total"].as_u64().unwrap()
    });
    assert_eq!(total, CLICKS, "the month holds every click");

    let mut group = c.benchmark_group("stats_30_days_by_day");
    for (name, scope) in [("link", &link_scope), ("account", &account_scope)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let rollups = store.stats(scope, w.from_hour, w.to_hour).await.unwrap();
                    summarize(w, &rollups)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stats);
criterion_main!(benches);
