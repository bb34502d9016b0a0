//! Conformance: links: unique codes, updates, deletes, listings, a code used again.

use chrono::Duration;
use uuid::Uuid;

use super::fixtures::{click, delivery, link, pages};
use crate::domain::{DeliveryStatus, FraudAction};
use crate::store::{ClickBatch, Paging, SharedStore};

pub async fn link_codes_are_unique(store: SharedStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    assert!(
        store
            .insert_link(&link("same", a, 1_000), &[])
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_link(&link("same", b, 2_000), &[])
            .await
            .unwrap()
    );
    let stored = store.get_link("same").await.unwrap().expect("link");
    assert_eq!(stored.account_id, a);
    assert_eq!(store.get_link("other").await.unwrap(), None);
}

pub async fn link_update_and_delete(store: SharedStore) {
    let a = Uuid::now_v7();
    let mut l = link("upd", a, 1_000);
    store.insert_link(&l, &[]).await.unwrap();
    l.destination = "https://example.org/new".into();
    l.disabled = true;
    l.disabled_reason = Some("fraud".into());
    l.fraud_policy = Some(FraudAction::DisableLink);
    l.expires_at = Some(l.created_at + Duration::days(1));
    store.update_link(&l, &[]).await.unwrap();
    assert_eq!(store.get_link("upd").await.unwrap(), Some(l.clone()));

    store
        .record_clicks(&ClickBatch {
            clicks: vec![click("upd", 1)],
            counts: vec![("upd".into(), 1)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    // The deletion's event is written with it.
    let owed = delivery(Uuid::now_v7(), chrono::Utc::now(), DeliveryStatus::Pending);
    store
        .delete_link(&l, std::slice::from_ref(&owed))
        .await
        .unwrap();
    assert_eq!(
        store.due_deliveries(owed.endpoint_id, 10).await.unwrap(),
        vec![owed]
    );
    assert_eq!(store.get_link("upd").await.unwrap(), None);
    assert_eq!(store.click_count("upd").await.unwrap(), 0);
    assert!(
        store
            .list_clicks("upd", Paging::new(10, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let page = store.list_links(a, Paging::new(10, None)).await.unwrap();
    assert!(page.items.is_empty());
    // The code is free again.
    assert!(
        store
            .insert_link(&link("upd", a, 5_000), &[])
            .await
            .unwrap()
    );
}

pub async fn links_list_newest_first_by_account(store: SharedStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    for i in 0..5 {
        store
            .insert_link(&link(&format!("a{i}"), a, 1_000 + i), &[])
            .await
            .unwrap();
    }
    store.insert_link(&link("b0", b, 3_000), &[]).await.unwrap();

    let listed = pages(2, |page| store.list_links(a, page)).await;
    let codes: Vec<Vec<&str>> = listed
        .iter()
        .map(|page| page.iter().map(|l| l.code.as_str()).collect())
        .collect();
    assert_eq!(codes, [vec!["a4", "a3"], vec!["a2", "a1"], vec!["a0"]]);

    let only_b = store.list_links(b, Paging::new(10, None)).await.unwrap();
    assert_eq!(only_b.items.len(), 1);
    assert!(
        store
            .list_links(a, Paging::new(2, Some("%%not-a-cursor")))
            .await
            .is_err()
    );
}

pub async fn recreated_code_starts_afresh(store: SharedStore) {
    let a = Uuid::now_v7();
    let first = link("again", a, 1_000);
    store.insert_link(&first, &[]).await.unwrap();
    store
        .record_clicks(&ClickBatch {
            clicks: vec![click("again", 1), click("again", 2)],
            counts: vec![("again".into(), 3)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    store.delete_link(&first, &[]).await.unwrap();
    let second = link("again", a, 9_000);
    assert!(store.insert_link(&second, &[]).await.unwrap());
    let fresh = click("again", 9);
    store
        .record_clicks(&ClickBatch {
            clicks: vec![fresh.clone()],
            counts: vec![("again".into(), 2)],
            ..ClickBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.click_count("again").await.unwrap(), 2);
    let page = store
        .list_clicks("again", Paging::new(10, None))
        .await
        .unwrap();
    assert_eq!(page.items, vec![fresh]);
    let listed = store.list_links(a, Paging::new(10, None)).await.unwrap();
    assert_eq!(listed.items, vec![second]);
}
