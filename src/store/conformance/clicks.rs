//! Conformance: clicks: counters, newest-first listings across day buckets, a full flush batch.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixtures::{click, click_at, link, pages};
use crate::domain::Click;
use crate::store::{ClickBatch, Paging, SharedStore, StoreError};

pub async fn clicks_count_and_list_newest_first(store: SharedStore) {
    let a = Uuid::now_v7();
    store.insert_link(&link("c", a, 1_000), &[]).await.unwrap();
    let clicks: Vec<Click> = (0..5).map(|n| click("c", n)).collect();
    store
        .record_clicks(&ClickBatch {
            clicks: clicks[..3].to_vec(),
            // 3 stored plus 2 shed: the counter has them all.
            counts: vec![("c".into(), 5)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    store
        .record_clicks(&ClickBatch {
            clicks: clicks[3..].to_vec(),
            counts: vec![("c".into(), 2)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.click_count("c").await.unwrap(), 7);
    assert_eq!(store.click_count("none").await.unwrap(), 0);

    let page = store.list_clicks("c", Paging::new(3, None)).await.unwrap();
    let ips: Vec<_> = page.items.iter().map(|c| c.ip.to_string()).collect();
    assert_eq!(ips, ["203.0.113.4", "203.0.113.3", "203.0.113.2"]);
    let rest = store
        .list_clicks("c", Paging::new(3, page.next_cursor.as_deref()))
        .await
        .unwrap();
    let ips: Vec<_> = rest.items.iter().map(|c| c.ip.to_string()).collect();
    assert_eq!(ips, ["203.0.113.1", "203.0.113.0"]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(rest.items[0], clicks[1]);
}

pub async fn clicks_listed_across_days(store: SharedStore) {
    let a = Uuid::now_v7();
    store.insert_link(&link("d", a, 1_000), &[]).await.unwrap();
    let now = Utc::now();
    // Two clicks today, one yesterday, two five days ago (ids carry those times).
    let at = [
        now - Duration::days(5) - Duration::seconds(2),
        now - Duration::days(5),
        now - Duration::days(1),
        now - Duration::seconds(2),
        now - Duration::seconds(1),
    ];
    let clicks: Vec<Click> = at
        .iter()
        .enumerate()
        .map(|(n, at)| click_at("d", n as u32, *at))
        .collect();
    store
        .record_clicks(&ClickBatch {
            clicks: clicks.clone(),
            counts: vec![("d".into(), 5)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    let listed = pages(2, |page| store.list_clicks("d", page)).await;
    assert_eq!(listed.len(), 3);
    let seen: Vec<Uuid> = listed.iter().flatten().map(|c| c.id).collect();
    let expected: Vec<Uuid> = clicks.iter().rev().map(|c| c.id).collect();
    assert_eq!(seen, expected);
    let all = store.list_clicks("d", Paging::new(10, None)).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next_cursor, None);
    assert!(matches!(
        store
            .list_clicks("d", Paging::new(2, Some("%%not-a-cursor")))
            .await,
        Err(StoreError::BadCursor)
    ));
}

pub async fn full_click_batch_is_written_and_paged(store: SharedStore) {
    let a = Uuid::now_v7();
    for code in ["big", "small"] {
        store.insert_link(&link(code, a, 1_000), &[]).await.unwrap();
    }
    // A whole flush (redirect.flush_max_batch defaults to 1024), mostly on one link.
    let clicks: Vec<Click> = (0..1024)
        .map(|n| click(if n % 8 == 0 { "small" } else { "big" }, n % 250))
        .collect();
    store
        .record_clicks(&ClickBatch {
            clicks: clicks.clone(),
            counts: vec![("big".into(), 896), ("small".into(), 128)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.click_count("big").await.unwrap(), 896);
    assert_eq!(store.click_count("small").await.unwrap(), 128);
    let listed = pages(100, |page| store.list_clicks("big", page)).await;
    let seen: Vec<Uuid> = listed.iter().flatten().map(|c| c.id).collect();
    let expected: Vec<Uuid> = clicks
        .iter()
        .rev()
        .filter(|c| c.code == "big")
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, expected);
}
