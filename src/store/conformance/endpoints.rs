//! Conformance: webhook endpoints: stored, listed per account and in all, deleted with their rows.

use chrono::Utc;
use uuid::Uuid;

use super::fixtures::{attempt, delivery, endpoint};
use crate::domain::{AttemptStatus, DeliveryStatus, DeliveryUpdate};
use crate::store::{AttemptsOf, Paging, SharedStore};

pub async fn endpoints_stored_listed_and_deleted(store: SharedStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    let e1 = endpoint(a, "https://example.com/one");
    let e2 = endpoint(a, "https://example.com/two");
    let e3 = endpoint(b, "https://example.com/three");
    for e in [&e1, &e2, &e3] {
        store.insert_endpoint(e).await.unwrap();
    }
    assert_eq!(store.get_endpoint(e1.id).await.unwrap(), Some(e1.clone()));
    assert_eq!(store.get_endpoint(Uuid::now_v7()).await.unwrap(), None);
    // Oldest first.
    assert_eq!(
        store.list_endpoints(a).await.unwrap(),
        vec![e1.clone(), e2.clone()]
    );
    assert_eq!(store.list_endpoints(b).await.unwrap(), vec![e3.clone()]);
    assert!(
        store
            .list_endpoints(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
    let mut all = store.all_endpoints().await.unwrap();
    all.sort_by_key(|e| e.id);
    assert_eq!(all, vec![e1.clone(), e2.clone(), e3.clone()]);

    let mut changed = e1.clone();
    changed.url = "https://example.org/moved".into();
    changed.enabled = false;
    changed.disabled_reason = Some("20 failed deliveries in a row".into());
    changed.failed_streak = 20;
    store.update_endpoint(&changed).await.unwrap();
    assert_eq!(
        store.get_endpoint(e1.id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(store.list_endpoints(a).await.unwrap()[0], changed);

    // Deleting takes the endpoint's outbox and attempts with it, and nothing else.
    let now = Utc::now();
    let pending = delivery(e1.id, now, DeliveryStatus::Pending);
    let failed = delivery(e1.id, now, DeliveryStatus::Failed);
    let other = delivery(e2.id, now, DeliveryStatus::Pending);
    store
        .upsert_deliveries(&[pending.clone(), failed.clone(), other.clone()])
        .await
        .unwrap();
    let tried = attempt(e1.id, pending.event_id, now, AttemptStatus::Pending);
    store
        .save_outcomes(&[(tried, DeliveryUpdate::Save(pending.clone()))])
        .await
        .unwrap();
    store.delete_endpoint(&changed).await.unwrap();
    assert_eq!(store.get_endpoint(e1.id).await.unwrap(), None);
    assert_eq!(store.list_endpoints(a).await.unwrap(), vec![e2.clone()]);
    assert_eq!(store.all_endpoints().await.unwrap().len(), 2);
    assert!(store.due_deliveries(e1.id, 10).await.unwrap().is_empty());
    assert_eq!(
        store.get_delivery(e1.id, pending.event_id).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_delivery(e1.id, failed.event_id).await.unwrap(),
        None
    );
    let attempts = store
        .list_attempts(AttemptsOf::new(e1.id, None), Paging::new(10, None))
        .await
        .unwrap();
    assert!(attempts.items.is_empty());
    assert_eq!(store.due_deliveries(e2.id, 10).await.unwrap(), vec![other]);
}
