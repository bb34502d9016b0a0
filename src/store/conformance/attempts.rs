//! Conformance: the attempts log: newest first, filtered by status.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixtures::{attempt, pages};
use crate::domain::{Attempt, AttemptStatus, DeliveryUpdate};
use crate::store::{AttemptsOf, Paging, SharedStore, StoreError};

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

    // Pages of ids, each page's attempts newest first.
    let ids = |pages: Vec<Vec<Attempt>>| -> Vec<Vec<Uuid>> {
        let ids = |page: Vec<Attempt>| page.into_iter().map(|a| a.id).collect();
        pages.into_iter().map(ids).collect()
    };
    let id = |n: usize| attempts[n].id;
    let listed = |status| {
        let store = &store;
        move |page| store.list_attempts(AttemptsOf::new(e, status), page)
    };
    let all = pages(2, listed(None)).await;
    assert_eq!(all[2], [attempts[0].clone()]);
    assert_eq!(
        ids(all),
        [vec![id(4), id(3)], vec![id(2), id(1)], vec![id(0)]]
    );
    let pending = pages(1, listed(Some(Pending))).await;
    assert_eq!(ids(pending), [[id(2)], [id(0)]]);
    let succeeded = pages(5, listed(Some(Succeeded))).await;
    assert_eq!(ids(succeeded), [[id(4), id(1)]]);
    let failed = pages(5, listed(Some(Failed))).await;
    assert_eq!(ids(failed), [[id(3)]]);

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
