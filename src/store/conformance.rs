//! The behaviour every [`Store`] backend must show. Each case takes a fresh,
//! empty store; `store_conformance_suite!` turns the list into one test per case
//! for a backend (see `tests/store_conformance.rs`).

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::{ClickBatch, SharedStore, StoreError};
use crate::domain::{
    Account, Attempt, AttemptStatus, Click, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint,
    Incident, Link, Location, Secret,
};

fn link(code: &str, account: Uuid, created_ms: i64) -> Link {
    let at = Utc
        .timestamp_millis_opt(created_ms)
        .single()
        .unwrap_or_default();
    Link {
        code: code.into(),
        account_id: account,
        destination: format!("https://example.com/{code}"),
        redirect_status: 302,
        created_at: at,
        updated_at: at,
        expires_at: None,
        disabled: false,
        disabled_reason: None,
        tags: vec!["t".into()],
    }
}

fn click(code: &str, n: u32) -> Click {
    Click {
        id: Uuid::now_v7(),
        code: code.into(),
        at: Utc::now(),
        ip: format!("203.0.113.{n}")
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        user_agent: "ua".into(),
        referrer: String::new(),
        referrer_host: None,
        location: Location {
            country: Some("US".into()),
            ..Location::default()
        },
        device: "desktop".into(),
        browser: "Firefox".into(),
        os: "Linux".into(),
        is_bot: false,
    }
}

/// A UUIDv7 for a moment in the past (ids order logs; their time picks day buckets).
fn id_at(at: DateTime<Utc>) -> Uuid {
    let ms = at.timestamp_millis().max(0) as u64;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        ms / 1000,
        (ms % 1000) as u32 * 1_000_000,
    ))
}

fn click_at(code: &str, n: u32, at: DateTime<Utc>) -> Click {
    Click {
        id: id_at(at),
        at,
        ..click(code, n)
    }
}

fn endpoint(account: Uuid, url: &str) -> Endpoint {
    let now = Utc::now();
    Endpoint {
        id: Uuid::now_v7(),
        account_id: account,
        url: url.into(),
        events: vec!["*".into()],
        enabled: true,
        disabled_reason: None,
        rate_limit_per_sec: 50,
        description: String::new(),
        secrets: vec![Secret {
            value: "whsec_c2VjcmV0".into(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        failed_streak: 0,
    }
}

fn delivery(endpoint: Uuid, due: DateTime<Utc>, status: DeliveryStatus) -> Delivery {
    Delivery {
        endpoint_id: endpoint,
        event_id: Uuid::now_v7(),
        event_type: "link.clicked".into(),
        body: format!("{{\"due\":{}}}", due.timestamp_millis()),
        created_at: Utc::now(),
        attempts: 0,
        first_attempt_at: None,
        next_attempt_at: due,
        status,
    }
}

fn attempt(endpoint: Uuid, event: Uuid, at: DateTime<Utc>, status: AttemptStatus) -> Attempt {
    Attempt {
        id: id_at(at),
        endpoint_id: endpoint,
        event_id: event,
        event_type: "link.clicked".into(),
        attempt: 1,
        at,
        status,
        status_code: Some(500),
        error: None,
        duration_ms: 12,
        next_attempt_at: None,
        response_body: None,
    }
}

fn codes(links: &[Link]) -> Vec<&str> {
    links.iter().map(|l| l.code.as_str()).collect()
}

pub async fn ping_answers(store: SharedStore) {
    store.ping().await.expect("ping");
}

pub async fn meta_first_value_wins(store: SharedStore) {
    assert_eq!(store.meta_get_or_insert("k", "one").await.unwrap(), "one");
    assert_eq!(store.meta_get_or_insert("k", "two").await.unwrap(), "one");
}

pub async fn accounts_found_by_key_hash(store: SharedStore) {
    let account = Account {
        id: Uuid::now_v7(),
        name: "acme".into(),
        created_at: Utc::now(),
    };
    store.create_account(&account, [7; 32]).await.unwrap();
    assert_eq!(
        store.account_by_key_hash([7; 32]).await.unwrap(),
        Some(account.id)
    );
    assert_eq!(store.account_by_key_hash([8; 32]).await.unwrap(), None);
}

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
    store.delete_link(&l).await.unwrap();
    assert_eq!(store.get_link("upd").await.unwrap(), None);
    assert_eq!(store.click_count("upd").await.unwrap(), 0);
    assert!(
        store
            .list_clicks("upd", 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let page = store.list_links(a, 10, None).await.unwrap();
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

    let first = store.list_links(a, 2, None).await.unwrap();
    let codes: Vec<_> = first.items.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(codes, ["a4", "a3"]);
    let cursor = first.next_cursor.expect("more pages");
    let second = store.list_links(a, 2, Some(&cursor)).await.unwrap();
    let codes: Vec<_> = second.items.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(codes, ["a2", "a1"]);
    let third = store
        .list_links(a, 2, second.next_cursor.as_deref())
        .await
        .unwrap();
    let codes: Vec<_> = third.items.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(codes, ["a0"]);
    assert_eq!(third.next_cursor, None);

    let only_b = store.list_links(b, 10, None).await.unwrap();
    assert_eq!(only_b.items.len(), 1);
    assert!(
        store
            .list_links(a, 2, Some("%%not-a-cursor"))
            .await
            .is_err()
    );
}

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

    let page = store.list_clicks("c", 3, None).await.unwrap();
    let ips: Vec<_> = page.items.iter().map(|c| c.ip.to_string()).collect();
    assert_eq!(ips, ["203.0.113.4", "203.0.113.3", "203.0.113.2"]);
    let rest = store
        .list_clicks("c", 3, page.next_cursor.as_deref())
        .await
        .unwrap();
    let ips: Vec<_> = rest.items.iter().map(|c| c.ip.to_string()).collect();
    assert_eq!(ips, ["203.0.113.1", "203.0.113.0"]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(rest.items[0], clicks[1]);
}

pub async fn incidents_listed_newest_first_by_account(store: SharedStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    for (i, account) in [a, a, b, a].into_iter().enumerate() {
        store
            .record_incident(&Incident {
                id: Uuid::now_v7(),
                account_id: account,
                code: format!("i{i}"),
                ip_range: "203.0.113.0/24".into(),
                clicks: 201,
                window_secs: 10,
                at: Utc::now(),
            })
            .await
            .unwrap();
    }
    let page = store.list_incidents(a, 2, None).await.unwrap();
    let codes: Vec<_> = page.items.iter().map(|i| i.code.as_str()).collect();
    assert_eq!(codes, ["i3", "i1"]);
    let rest = store
        .list_incidents(a, 2, page.next_cursor.as_deref())
        .await
        .unwrap();
    let codes: Vec<_> = rest.items.iter().map(|i| i.code.as_str()).collect();
    assert_eq!(codes, ["i0"]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(
        store.list_incidents(b, 10, None).await.unwrap().items.len(),
        1
    );
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
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let page = store.list_clicks("d", 2, cursor.as_deref()).await.unwrap();
        seen.extend(page.items.iter().map(|c| c.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<Uuid> = clicks.iter().rev().map(|c| c.id).collect();
    assert_eq!(seen, expected);
    assert_eq!(cursor, None);
    let all = store.list_clicks("d", 10, None).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next_cursor, None);
    assert!(matches!(
        store.list_clicks("d", 2, Some("%%not-a-cursor")).await,
        Err(StoreError::BadCursor)
    ));
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
    store.delete_link(&first).await.unwrap();
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
    let page = store.list_clicks("again", 10, None).await.unwrap();
    assert_eq!(page.items, vec![fresh]);
    let listed = store.list_links(a, 10, None).await.unwrap();
    assert_eq!(listed.items, vec![second]);
}

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
    let attempts = store.list_attempts(e1.id, None, 10, None).await.unwrap();
    assert!(attempts.items.is_empty());
    assert_eq!(store.due_deliveries(e2.id, 10).await.unwrap(), vec![other]);
}

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
    store
        .upsert_deliveries(std::slice::from_ref(&d2))
        .await
        .unwrap();

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
                DeliveryUpdate::Delivered {
                    endpoint_id: e,
                    event_id: d3.event_id,
                },
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
            DeliveryUpdate::Delivered {
                endpoint_id: e,
                event_id: d3.event_id,
            },
        )])
        .await
        .unwrap();
    assert_eq!(
        store
            .list_attempts(e, None, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        4
    );
}

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

    let ids = |page: &super::Page<Attempt>| page.items.iter().map(|a| a.id).collect::<Vec<_>>();
    let first = store.list_attempts(e, None, 2, None).await.unwrap();
    assert_eq!(ids(&first), [attempts[4].id, attempts[3].id]);
    let second = store
        .list_attempts(e, None, 2, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&second), [attempts[2].id, attempts[1].id]);
    let third = store
        .list_attempts(e, None, 2, second.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&third), [attempts[0].id]);
    assert_eq!(third.next_cursor, None);
    assert_eq!(third.items[0], attempts[0]);

    let pending = store
        .list_attempts(e, Some(Pending), 1, None)
        .await
        .unwrap();
    assert_eq!(ids(&pending), [attempts[2].id]);
    let pending_rest = store
        .list_attempts(e, Some(Pending), 1, pending.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&pending_rest), [attempts[0].id]);
    assert_eq!(pending_rest.next_cursor, None);
    let succeeded = store
        .list_attempts(e, Some(Succeeded), 5, None)
        .await
        .unwrap();
    assert_eq!(ids(&succeeded), [attempts[4].id, attempts[1].id]);
    assert_eq!(succeeded.next_cursor, None);
    let failed = store.list_attempts(e, Some(Failed), 5, None).await.unwrap();
    assert_eq!(ids(&failed), [attempts[3].id]);

    let theirs = store.list_attempts(other, None, 10, None).await.unwrap();
    assert_eq!(theirs.items, vec![stranger]);
    assert!(matches!(
        store
            .list_attempts(e, None, 2, Some("%%not-a-cursor"))
            .await,
        Err(StoreError::BadCursor)
    ));
}

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
    store.delete_link(&deleted).await.unwrap();

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

pub async fn repeated_versions_in_one_call_keep_the_last(store: SharedStore) {
    let e = Uuid::now_v7();
    let t = Utc::now();
    let d = delivery(e, t, DeliveryStatus::Pending);
    store
        .upsert_deliveries(std::slice::from_ref(&d))
        .await
        .unwrap();
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
                DeliveryUpdate::Delivered {
                    endpoint_id: e,
                    event_id: d.event_id,
                },
            ),
        ])
        .await
        .unwrap();
    assert!(store.due_deliveries(e, 10).await.unwrap().is_empty());
    assert_eq!(store.get_delivery(e, d.event_id).await.unwrap(), None);
    assert_eq!(
        store
            .list_attempts(e, None, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // Two saved versions: the last one is the row.
    let d2 = delivery(e, t, DeliveryStatus::Pending);
    store
        .upsert_deliveries(std::slice::from_ref(&d2))
        .await
        .unwrap();
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
    store
        .upsert_deliveries(std::slice::from_ref(&d3))
        .await
        .unwrap();
    store
        .upsert_deliveries(&[d3.clone(), d3_sooner.clone()])
        .await
        .unwrap();
    assert_eq!(store.due_deliveries(e, 10).await.unwrap(), vec![d3_sooner]);
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
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_clicks("big", 100, cursor.as_deref())
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|c| c.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<Uuid> = clicks
        .iter()
        .rev()
        .filter(|c| c.code == "big")
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, expected);
}

/// One `#[tokio::test]` per conformance case; `$make` is an async expression
/// giving a fresh `Option<SharedStore>` (None: backend unavailable, case skipped).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@cases $make;
            ping_answers,
            meta_first_value_wins,
            accounts_found_by_key_hash,
            link_codes_are_unique,
            link_update_and_delete,
            links_list_newest_first_by_account,
            clicks_count_and_list_newest_first,
            incidents_listed_newest_first_by_account,
            clicks_listed_across_days,
            recreated_code_starts_afresh,
            endpoints_stored_listed_and_deleted,
            outbox_due_order_and_outcomes,
            attempts_listed_newest_first_with_status_filter,
            expiries_fire_once_and_follow_updates,
            repeated_versions_in_one_call_keep_the_last,
            full_click_batch_is_written_and_paged,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                if let Some(store) = $make {
                    $crate::store::conformance::$case(store).await;
                }
            }
        )*
    };
}
