//! The redirect lookup: a cache hit, a miss that reads the embedded store, and
//! two threads hitting the same hot codes at once (the redirect path is concurrent).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use relurl::{
    domain::Link,
    link_cache::{LinkCache, Lookup},
    store::{EmbeddedStore, SharedStore},
};
use uuid::Uuid;

fn link(code: String) -> Link {
    Link {
        code,
        account_id: Uuid::now_v7(),
        destination: "https://example.com/landing?campaign=bench".into(),
        redirect_status: 302,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        expires_at: None,
        disabled: false,
        disabled_reason: None,
        tags: vec!["bench".into()],
        fraud_policy: None,
    }
}

fn lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let cache = Arc::new(LinkCache::new(
        store.clone(),
        1 << 20,
        Duration::from_secs(5),
        Duration::from_secs(3600),
        "http://b.example",
    ));
    let codes: Vec<String> = (0..10_000).map(|i| format!("c{i:06}")).collect();
    runtime.block_on(async {
        for code in &codes {
            store
                .insert_link(&link(code.clone()), &[])
                .await
                .expect("insert");
            assert!(matches!(cache.lookup(code).await, Ok(Lookup::Found(_))));
        }
    });

    let mut group = c.benchmark_group("redirect_lookup");
    let mut i = 0usize;
    group.bench_function("cache_hit", |b| {
        b.to_async(&runtime).iter(|| {
            i = (i + 1) % codes.len();
            let code = &codes[i];
            let cache = &cache;
            async move { matches!(cache.lookup(code).await, Ok(Lookup::Found(_))) }
        })
    });
    group.bench_function("cache_miss_to_store", |b| {
        b.to_async(&runtime).iter(|| {
            i = (i + 1) % codes.len();
            let code = &codes[i];
            cache.remove(code);
            let cache = &cache;
            async move { matches!(cache.lookup(code).await, Ok(Lookup::Found(_))) }
        })
    });
    // Per iteration: one lookup on each of two threads, on 64 hot codes.
    let hot: Arc<[String]> = codes[..64].into();
    group.bench_function("cache_hit_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = (0..2)
                    .map(|t| {
                        let (cache, hot) = (cache.clone(), hot.clone());
                        tokio::spawn(async move {
                            for n in 0..iters as usize {
                                let code = &hot[(n + t * 32) % hot.len()];
                                assert!(matches!(cache.lookup(code).await, Ok(Lookup::Found(_))));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("bench task");
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
