//! Conformance: reading an endpoint's failed deliveries in a creation window
//! (what the recover API makes pending again).

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixtures::delivery;
use crate::domain::{Delivery, DeliveryStatus};
use crate::store::{CreatedWindow, SharedStore};

pub async fn failed_deliveries_in_a_window(store: SharedStore) {
    let e = Uuid::now_v7();
    let other = Uuid::now_v7();
    let t = Utc::now();
    let made_at = |minutes: i64, status, endpoint| Delivery {
        created_at: t + Duration::minutes(minutes),
        ..delivery(endpoint, t, status)
    };
    let before = made_at(-1, DeliveryStatus::Failed, e);
    let first = made_at(0, DeliveryStatus::Failed, e);
    let pending = made_at(1, DeliveryStatus::Pending, e);
    let second = made_at(2, DeliveryStatus::Failed, e);
    let third = made_at(3, DeliveryStatus::Failed, e);
    let at_until = made_at(4, DeliveryStatus::Failed, e);
    let elsewhere = made_at(1, DeliveryStatus::Failed, other);
    let all = [
        &before, &first, &pending, &second, &third, &at_until, &elsewhere,
    ];
    store
        .upsert_deliveries(&all.map(Clone::clone))
        .await
        .unwrap();
    let window = CreatedWindow {
        since: t,
        until: t + Duration::minutes(4),
    };

    // Only failed rows of that endpoint, since included, until excluded.
    let found = store.failed_deliveries(e, window, None, 100).await.unwrap();
    assert_eq!(found, vec![first.clone(), second.clone(), third.clone()]);
    // Bounded by the limit, in event order.
    let found = store.failed_deliveries(e, window, None, 2).await.unwrap();
    assert_eq!(found, vec![first.clone(), second.clone()]);
    // The next chunk starts after the last one.
    let next = store
        .failed_deliveries(e, window, Some(second.event_id), 2)
        .await
        .unwrap();
    assert_eq!(next, vec![third.clone()]);
    let from_first = Some(first.event_id);
    let next = store
        .failed_deliveries(e, window, from_first, 1)
        .await
        .unwrap();
    assert_eq!(next, vec![second.clone()]);
    assert_eq!(
        store.failed_deliveries(e, window, None, 0).await.unwrap(),
        vec![]
    );

    // Made pending again (as recover does): no longer failed, due for delivery.
    let mut recovered = first.clone();
    recovered.status = DeliveryStatus::Pending;
    recovered.next_attempt_at = t;
    store.upsert_deliveries(&[recovered.clone()]).await.unwrap();
    let found = store.failed_deliveries(e, window, None, 100).await.unwrap();
    assert_eq!(found, vec![second, third]);
    assert!(
        store
            .due_deliveries(e, 10)
            .await
            .unwrap()
            .contains(&recovered)
    );
    assert_eq!(
        store
            .failed_deliveries(other, window, None, 100)
            .await
            .unwrap(),
        vec![elsewhere]
    );
}
