//! Conformance: the attempts log: newest first, filtered by status.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixtures::attempt;
use crate::domain::{Attempt, AttemptStatus, DeliveryUpdate};
use crate::store::{AttemptsOf, Page, Paging, SharedStore, StoreError};

pub async fn attempts_listed_newest_first_with_status_filter(store: SharedStore) {
    let e = Uuid::now_v7();
    let other = Uuid::now_v7();
    let now = Utc::now();
    use AttemptStatus::{Failed, Pending, Succeeded};
    // Oldest first: two days ago, yesterday, today.
    let plan = [
        (now - Duration::days(2) - Duration::seconds(1), Pending),
        (now - Duration::days(2), Succeeded),
        (now - Duration::days(1), Pending),
        (now - Duration::seconds(2), Failed),
        (now - Duration::seconds(1), Succeeded),
    ];
    let attempts: Vec<Attempt> = plan
        .iter()
        .map(|(at, status)| attempt(e, Uuid::now_v7(), *at, *status))
        .collect();
    let gone = |a: &Attempt| DeliveryUpdate::Delivered {
        endpoint_id: a.endpoint_id,
        event_id: a.event_id,
    };
    for chunk in attempts.chunks(3) {
        let outcomes: Vec<_> = chunk.iter().map(|a| (a.clone(), gone(a))).collect();
        store.save_outcomes(&outcomes).await.unwrap();
    }
    let stranger = attempt(other, Uuid::now_v7(), now, Succeeded);
    store
        .save_outcomes(&[(stranger.clone(), gone(&stranger))])
        .await
        .unwrap();

    let ids = |page: &Page<Attempt>| page.items.iter().map(|a| a.id).collect::<Vec<_>>();
    let first = store
        .list_attempts(AttemptsOf::new(e, None), Paging::new(2, None))
        .await
        .unwrap();
    assert_eq!(ids(&first), [attempts[4].id, attempts[3].id]);
    let second = store
        .list_attempts(
            AttemptsOf::new(e, None),
            Paging::new(2, first.next_cursor.as_deref()),
        )
        .await
        .unwrap();
    assert_eq!(ids(&second), [attempts[2].id, attempts[1].id]);
    let third = store
        .list_attempts(
            AttemptsOf::new(e, None),
            Paging::new(2, second.next_cursor.as_deref()),
        )
        .await
        .unwrap();
    assert_eq!(ids(&third), [attempts[0].id]);
    assert_eq!(third.next_cursor, None);
    assert_eq!(third.items[0], attempts[0]);

    let pending = store
        .list_attempts(AttemptsOf::new(e, Some(Pending)), Paging::new(1, None))
        .await
        .unwrap();
    assert_eq!(ids(&pending), [attempts[2].id]);
    let pending_rest = store
        .list_attempts(
            AttemptsOf::new(e, Some(Pending)),
            Paging::new(1, pending.next_cursor.as_deref()),
        )
        .await
        .unwrap();
    assert_eq!(ids(&pending_rest), [attempts[0].id]);
    assert_eq!(pending_rest.next_cursor, None);
    let succeeded = store
        .list_attempts(AttemptsOf::new(e, Some(Succeeded)), Paging::new(5, None))
        .await
        .unwrap();
    assert_eq!(ids(&succeeded), [attempts[4].id, attempts[1].id]);
    assert_eq!(succeeded.next_cursor, None);
    let failed = store
        .list_attempts(AttemptsOf::new(e, Some(Failed)), Paging::new(5, None))
        .await
        .unwrap();
    assert_eq!(ids(&failed), [attempts[3].id]);

    let theirs = store
        .list_attempts(AttemptsOf::new(other, None), Paging::new(10, None))
        .await
        .unwrap();
    assert_eq!(theirs.items, vec![stranger]);
    assert!(matches!(
        store
            .list_attempts(
                AttemptsOf::new(e, None),
                Paging::new(2, Some("%%not-a-cursor"))
            )
            .await,
        Err(StoreError::BadCursor)
    ));
}
