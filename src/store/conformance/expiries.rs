//! Conformance: link expiries: due once, moved by updates.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::fixtures::{codes, delivery, link};
use crate::domain::{DeliveryStatus, Link};
use crate::store::SharedStore;

pub async fn expiries_fire_once_and_follow_updates(store: SharedStore) {
    let a = Uuid::now_v7();
    let now = Utc::now();
    let created = (now - Duration::days(3)).timestamp_millis();
    let expiring = |code: &str, at: Option<DateTime<Utc>>| Link {
        expires_at: at,
        ..link(code, a, created)
    };
    // Long overdue (as after days of downtime), just due, due later, never, deleted.
    let long_ago = expiring("x1", Some(now - Duration::days(2)));
    let just = expiring("x2", Some(now - Duration::minutes(1)));
    let later = expiring("x3", Some(now + Duration::hours(1)));
    let never = expiring("x4", None);
    let deleted = expiring("x5", Some(now - Duration::minutes(10)));
    for l in [&later, &long_ago, &never, &just, &deleted] {
        assert!(store.insert_link(l, &[]).await.unwrap());
    }
    store.delete_link(&deleted, &[]).await.unwrap();

    let due = store.due_expiries(now, 10).await.unwrap();
    assert_eq!(codes(&due), ["x1", "x2"]);
    assert_eq!(due[0], long_ago);
    assert_eq!(codes(&store.due_expiries(now, 1).await.unwrap()), ["x1"]);
    let in_two_hours = now + Duration::hours(2);
    assert_eq!(
        codes(&store.due_expiries(in_two_hours, 10).await.unwrap()),
        ["x1", "x2", "x3"]
    );

    // Fired once: gone from the queue, and its deliveries are written with it.
    let event = delivery(Uuid::now_v7(), now, DeliveryStatus::Pending);
    store
        .mark_expired(&long_ago, std::slice::from_ref(&event))
        .await
        .unwrap();
    assert_eq!(codes(&store.due_expiries(now, 10).await.unwrap()), ["x2"]);
    assert_eq!(
        store
            .get_delivery(event.endpoint_id, event.event_id)
            .await
            .unwrap(),
        Some(event)
    );

    // A changed expires_at moves the link in the queue.
    let mut just_moved = just.clone();
    just_moved.expires_at = Some(now + Duration::minutes(30));
    store.update_link(&just_moved, &[]).await.unwrap();
    assert!(store.due_expiries(now, 10).await.unwrap().is_empty());
    assert_eq!(
        codes(&store.due_expiries(in_two_hours, 10).await.unwrap()),
        ["x2", "x3"]
    );
    // An update that keeps expires_at leaves the link queued once.
    let mut later_renamed = later.clone();
    later_renamed.destination = "https://example.org/renamed".into();
    store.update_link(&later_renamed, &[]).await.unwrap();
    let due = store.due_expiries(in_two_hours, 10).await.unwrap();
    assert_eq!(codes(&due), ["x2", "x3"]);
    assert_eq!(due[1], later_renamed);
    // A fired link whose expires_at is set again is owed a new expiry.
    let mut rearmed = long_ago.clone();
    rearmed.expires_at = Some(now - Duration::seconds(5));
    store.update_link(&rearmed, &[]).await.unwrap();
    assert_eq!(codes(&store.due_expiries(now, 10).await.unwrap()), ["x1"]);
    // Removing the expiry takes the link out of the queue.
    let mut no_more = later_renamed.clone();
    no_more.expires_at = None;
    store.update_link(&no_more, &[]).await.unwrap();
    assert_eq!(
        codes(&store.due_expiries(in_two_hours, 10).await.unwrap()),
        ["x1", "x2"]
    );
}
