//! Conformance: hourly rollups add up across batches and writers, read back by
//! hour range, and go with their link.

use std::sync::Arc;

use uuid::Uuid;

use super::fixtures::link;
use crate::store::{ClickBatch, Dim, HourRollup, SharedStore, StatsScope};

fn rollup(hour: i64, humans: u64, country: &str) -> HourRollup {
    let mut r = HourRollup::new(hour);
    r.add(Dim::Human, "", humans);
    r.add(Dim::Bot, "", 1);
    r.add(Dim::Country, country, humans + 1);
    r.add(Dim::Referrer, "news.example.com", 1);
    r
}

fn batch(rollups: Vec<(StatsScope, HourRollup)>) -> ClickBatch {
    ClickBatch {
        rollups,
        ..ClickBatch::default()
    }
}

/// Hours in the tens of thousands since the epoch, on two UTC days.
const H: i64 = 493_000;

pub async fn rollups_add_up_and_read_by_hour_range(store: SharedStore) {
    let a = Uuid::now_v7();
    let l = link("s", a, 1_000);
    store.insert_link(&l, &[]).await.unwrap();
    let scope = StatsScope::of_link(&l);
    let account = StatsScope::Account(a);
    let first = vec![
        (scope.clone(), rollup(H, 2, "DE")),
        (scope.clone(), rollup(H + 30, 1, "FR")),
        (account.clone(), rollup(H, 2, "DE")),
    ];
    store.record_clicks(&batch(first)).await.unwrap();
    store
        .record_clicks(&batch(vec![(scope.clone(), rollup(H, 4, "DE"))]))
        .await
        .unwrap();

    let all = store.stats(&scope, H - 100, H + 100).await.unwrap();
    let hours: Vec<_> = all.iter().map(|r| (r.hour - H, r.total())).collect();
    assert_eq!(hours, [(0, 8), (30, 2)], "oldest first, summed per hour");
    assert_eq!(all[0].get(Dim::Country, "DE"), 8);
    assert_eq!(all[0].get(Dim::Referrer, "news.example.com"), 2);
    assert_eq!(all[1].get(Dim::Country, "FR"), 2);

    let end_exclusive = store.stats(&scope, H, H + 30).await.unwrap();
    assert_eq!(end_exclusive.len(), 1);
    let later = store.stats(&scope, H + 1, H + 31).await.unwrap();
    assert_eq!(later.iter().map(|r| r.hour).collect::<Vec<_>>(), [H + 30]);

    let acc = store.stats(&account, H - 1, H + 1).await.unwrap();
    assert_eq!(acc.iter().map(HourRollup::total).collect::<Vec<_>>(), [3]);
    let other = StatsScope::Account(Uuid::now_v7());
    assert!(
        store
            .stats(&other, H - 100, H + 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_writers_lose_no_increment(store: SharedStore) {
    let account = StatsScope::Account(Uuid::now_v7());
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let account = account.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    let mut r = HourRollup::new(H);
                    r.add(Dim::Human, "", 1);
                    store
                        .record_clicks(&batch(vec![(account.clone(), r)]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let read = store.stats(&account, H, H + 1).await.unwrap();
    assert_eq!(read[0].get(Dim::Human, ""), 40);
}

pub async fn deleted_link_takes_its_rollups_and_a_recreated_code_starts_afresh(store: SharedStore) {
    let a = Uuid::now_v7();
    let old = link("gone", a, 1_000);
    store.insert_link(&old, &[]).await.unwrap();
    let rollups = vec![
        (StatsScope::of_link(&old), rollup(H, 5, "DE")),
        (StatsScope::Account(a), rollup(H, 5, "DE")),
    ];
    store.record_clicks(&batch(rollups)).await.unwrap();
    store.delete_link(&old, &[]).await.unwrap();
    let old_scope = StatsScope::of_link(&old);
    assert!(
        store
            .stats(&old_scope, H - 1, H + 1)
            .await
            .unwrap()
            .is_empty()
    );
    let kept = store
        .stats(&StatsScope::Account(a), H, H + 1)
        .await
        .unwrap();
    assert_eq!(kept[0].total(), 6, "the account's history stays");

    let new = link("gone", a, 2_000);
    store.insert_link(&new, &[]).await.unwrap();
    let scope = StatsScope::of_link(&new);
    store
        .record_clicks(&batch(vec![(scope.clone(), rollup(H, 1, "US"))]))
        .await
        .unwrap();
    let read = store.stats(&scope, H, H + 1).await.unwrap();
    assert_eq!((read[0].total(), read[0].get(Dim::Country, "DE")), (2, 0));
}
