//! Conformance: webhook endpoints: stored, listed per account and in all, deleted with their rows.

use chrono::Utc;
use uuid::Uuid;

use super::fixtures::{attempt, delivery, endpoint};
use crate::domain::{AttemptStatus, DeliveryStatus, DeliveryUpdate};
use crate::store::{AttemptsOf, EndpointHealth, EndpointWrite, Paging, SharedStore};

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
    changed.version = 1;
    assert_eq!(
        store.update_endpoint(0, &changed).await.unwrap(),
        EndpointWrite::Written
    );
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

/// An API change racing the endpoint actor's write: whichever comes second
/// finds the version moved and writes nothing, so neither undoes the other.
pub async fn endpoint_writes_are_compare_and_set(store: SharedStore) {
    let e = endpoint(Uuid::now_v7(), "https://example.com/old");
    store.insert_endpoint(&e).await.unwrap();
    let streak = |n| EndpointHealth {
        failed_streak: n,
        disabled: None,
    };

    // The API wins the race: the actor's write (from version 0) gives way.
    let mut patched = e.clone();
    patched.url = "https://example.com/patched".into();
    patched.version = 1;
    assert_eq!(
        store.update_endpoint(0, &patched).await.unwrap(),
        EndpointWrite::Written
    );
    assert_eq!(
        store
            .save_endpoint_health(e.id, 0, &streak(3))
            .await
            .unwrap(),
        EndpointWrite::Stale
    );
    assert_eq!(
        store.get_endpoint(e.id).await.unwrap(),
        Some(patched.clone())
    );

    // The actor wins: the API's write from the old version gives way; read
    // again, its change keeps the actor's fields.
    let disable = EndpointHealth {
        failed_streak: 20,
        disabled: Some(("the last 20 deliveries failed".into(), Utc::now())),
    };
    assert_eq!(
        store.save_endpoint_health(e.id, 1, &disable).await.unwrap(),
        EndpointWrite::Written
    );
    let mut stale = patched.clone();
    stale.description = "lost".into();
    stale.version = 2;
    assert_eq!(
        store.update_endpoint(1, &stale).await.unwrap(),
        EndpointWrite::Stale
    );
    let stored = store.get_endpoint(e.id).await.unwrap().unwrap();
    assert_eq!(stored.url, "https://example.com/patched");
    assert_eq!(
        (stored.enabled, stored.failed_streak, stored.version),
        (false, 20, 2)
    );
    assert_eq!(
        stored.disabled_reason.as_deref(),
        Some("the last 20 deliveries failed")
    );
    assert_eq!(stored.secrets, e.secrets);
}

/// A write racing a delete answers `Gone` and brings nothing back.
pub async fn endpoint_update_after_delete_does_not_resurrect(store: SharedStore) {
    let account = Uuid::now_v7();
    let e = endpoint(account, "https://example.com/doomed");
    store.insert_endpoint(&e).await.unwrap();
    store.delete_endpoint(&e).await.unwrap();
    let mut patched = e.clone();
    patched.version = 1;
    assert_eq!(
        store.update_endpoint(0, &patched).await.unwrap(),
        EndpointWrite::Gone
    );
    let health = EndpointHealth {
        failed_streak: 1,
        disabled: None,
    };
    assert_eq!(
        store.save_endpoint_health(e.id, 0, &health).await.unwrap(),
        EndpointWrite::Gone
    );
    assert_eq!(store.get_endpoint(e.id).await.unwrap(), None);
    assert!(store.list_endpoints(account).await.unwrap().is_empty());
    assert!(store.all_endpoints().await.unwrap().is_empty());
}
