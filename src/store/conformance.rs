//! The behaviour every [`Store`] backend must show. Each case takes a fresh,
//! empty store; `store_conformance_suite!` turns the list into one test per case
//! for a backend (see `tests/store_conformance.rs`).

use chrono::{Duration, TimeZone, Utc};
use uuid::Uuid;

use super::{ClickBatch, SharedStore};
use crate::domain::{Account, Click, Incident, Link, Location};

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
