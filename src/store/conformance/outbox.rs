//! Conformance: the outbox: due order, outcomes, several versions of one delivery in one call.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixtures::{attempt, delivered, delivery};
use crate::domain::{AttemptStatus, Delivery, DeliveryStatus, DeliveryUpdate};
use crate::store::{AttemptsOf, Paging, SharedStore};

pub async fn outbox_due_order_and_outcomes(store: SharedStore) {
    let e = Uuid::now_v7();
    let other = Uuid::now_v7();
    let t = Utc::now();
    let d3 = delivery(e, t + Duration::seconds(3), DeliveryStatus::Pending);
    let d1 = delivery(e, t + Duration::seconds(1), DeliveryStatus::Pending);
    let d2 = delivery(e, t + Duration::seconds(2), DeliveryStatus::Pending);
    let gave_up = delivery(e, t, DeliveryStatus::Failed);
    let elsewhere = delivery(other, t, DeliveryStatus::Pending);
    store
        .upsert_deliveries(&[d3.clone(), d1.clone(), gave_up.clone(), elsewhere.clone()])
        .await
        .unwrap();
    upsert(&store, &d2).await;

    // Soonest due first; failed rows are not due.
    assert_eq!(
        store.due_deliveries(e, 10).await.unwrap(),
        vec![d1.clone(), d2.clone(), d3.clone()]
    );
    assert_eq!(
        store.due_deliveries(e, 2).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(
        store.due_deliveries(other, 10).await.unwrap(),
        vec![elsewhere]
    );
    for d in [&d1, &d2, &d3, &gave_up] {
        assert_eq!(
            store.get_delivery(e, d.event_id).await.unwrap().as_ref(),
            Some(d)
        );
    }
    assert_eq!(store.get_delivery(e, Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(store.get_delivery(other, d1.event_id).await.unwrap(), None);

    // Re-upserting moves a row: it is due at its new time, and only there.
    let mut d3_sooner = d3.clone();
    d3_sooner.next_attempt_at = t;
    store.upsert_deliveries(&[d3_sooner.clone()]).await.unwrap();
    assert_eq!(
        store.due_deliveries(e, 10).await.unwrap(),
        vec![d3_sooner.clone(), d1.clone(), d2.clone()]
    );
    // Retrying a failed one (as the retry API does) makes it due again.
    let mut retried = gave_up.clone();
    retried.status = DeliveryStatus::Pending;
    retried.next_attempt_at = t + Duration::seconds(10);
    store.upsert_deliveries(&[retried.clone()]).await.unwrap();
    assert_eq!(store.due_deliveries(e, 10).await.unwrap().len(), 4);
    assert_eq!(
        store.get_delivery(e, retried.event_id).await.unwrap(),
        Some(retried.clone())
    );

    // Outcomes: delivered rows go, saved ones change (and failed ones stop being due).
    let mut d1_later = d1.clone();
    d1_later.attempts = 1;
    d1_later.first_attempt_at = Some(t);
    d1_later.next_attempt_at = t + Duration::minutes(1);
    let mut d2_failed = d2.clone();
    d2_failed.attempts = 6;
    d2_failed.status = DeliveryStatus::Failed;
    store
        .save_outcomes(&[
            (
                attempt(e, d3.event_id, t, AttemptStatus::Succeeded),
                delivered(e, d3.event_id),
            ),
            (
                attempt(e, d1.event_id, t, AttemptStatus::Pending),
                DeliveryUpdate::Save(d1_later.clone()),
            ),
            (
                attempt(e, d2.event_id, t, AttemptStatus::Failed),
                DeliveryUpdate::Save(d2_failed.clone()),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.due_deliveries(e, 10).await.unwrap(),
        vec![retried.clone(), d1_later.clone()]
    );
    assert_eq!(store.get_delivery(e, d3.event_id).await.unwrap(), None);
    assert_eq!(
        store.get_delivery(e, d2.event_id).await.unwrap(),
        Some(d2_failed)
    );
    assert_eq!(
        store.get_delivery(e, d1.event_id).await.unwrap(),
        Some(d1_later)
    );
    // Delivering something with no outbox row (already gone) is harmless.
    store
        .save_outcomes(&[(
            attempt(e, d3.event_id, t, AttemptStatus::Succeeded),
            delivered(e, d3.event_id),
        )])
        .await
        .unwrap();
    assert_eq!(logged(&store, e).await, 4);
}

pub async fn repeated_versions_in_one_call_keep_the_last(store: SharedStore) {
    let e = Uuid::now_v7();
    let t = Utc::now();
    let d = delivery(e, t, DeliveryStatus::Pending);
    upsert(&store, &d).await;
    // A retry scheduled, then the retry delivered, saved together.
    let mut retry = d.clone();
    retry.attempts = 1;
    retry.next_attempt_at = t + Duration::minutes(1);
    store
        .save_outcomes(&[
            (
                attempt(e, d.event_id, t, AttemptStatus::Pending),
                DeliveryUpdate::Save(retry),
            ),
            (
                attempt(
                    e,
                    d.event_id,
                    t + Duration::seconds(1),
                    AttemptStatus::Succeeded,
                ),
                delivered(e, d.event_id),
            ),
        ])
        .await
        .unwrap();
    assert!(store.due_deliveries(e, 10).await.unwrap().is_empty());
    assert_eq!(store.get_delivery(e, d.event_id).await.unwrap(), None);
    assert_eq!(logged(&store, e).await, 2);

    // Two saved versions: the last one is the row.
    let d2 = delivery(e, t, DeliveryStatus::Pending);
    upsert(&store, &d2).await;
    let mut later = d2.clone();
    later.next_attempt_at = t + Duration::minutes(5);
    let mut failed = d2.clone();
    failed.status = DeliveryStatus::Failed;
    store
        .save_outcomes(&[
            (
                attempt(e, d2.event_id, t, AttemptStatus::Pending),
                DeliveryUpdate::Save(later),
            ),
            (
                attempt(e, d2.event_id, t, AttemptStatus::Failed),
                DeliveryUpdate::Save(failed.clone()),
            ),
        ])
        .await
        .unwrap();
    assert!(store.due_deliveries(e, 10).await.unwrap().is_empty());
    assert_eq!(
        store.get_delivery(e, d2.event_id).await.unwrap(),
        Some(failed)
    );

    // Two versions in one upsert: one row, at the last version's time.
    let d3 = delivery(e, t + Duration::seconds(5), DeliveryStatus::Pending);
    let mut d3_sooner = d3.clone();
    d3_sooner.next_attempt_at = t + Duration::seconds(1);
    upsert(&store, &d3).await;
    store
        .upsert_deliveries(&[d3.clone(), d3_sooner.clone()])
        .await
        .unwrap();
    assert_eq!(store.due_deliveries(e, 10).await.unwrap(), vec![d3_sooner]);
}

/// How many attempts the endpoint's log holds (a handful in these cases).
async fn logged(store: &SharedStore, endpoint: Uuid) -> usize {
    let all = store.list_attempts(AttemptsOf::new(endpoint, None), Paging::new(100, None));
    all.await.unwrap().items.len()
}

async fn upsert(store: &SharedStore, delivery: &Delivery) {
    let one = std::slice::from_ref(delivery);
    store.upsert_deliveries(one).await.unwrap();
}
