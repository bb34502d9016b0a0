//! Conformance: API key records: listed newest first per account, touched,
//! revoked (digest and record together), and a revoked key never comes back.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixtures::pages;
use crate::domain::{Account, ApiKey, KeyOwner};
use crate::store::{Paging, SharedStore};

async fn account_with_key(store: &SharedStore, digest: u8) -> (Account, ApiKey) {
    let account = Account {
        id: Uuid::now_v7(),
        name: "acme".into(),
        created_at: Utc::now(),
    };
    let key = ApiKey::new(account.id, "rl_AbCdEfGhIjKl", None, account.created_at);
    store
        .create_account(&account, &key, [digest; 32])
        .await
        .unwrap();
    (account, key)
}

pub async fn keys_listed_newest_first_and_revoked(store: SharedStore) {
    let (account, first) = account_with_key(&store, 1).await;
    let (_, other) = account_with_key(&store, 2).await;
    let second = ApiKey::new(account.id, "rl_second00", Some("ci".into()), Utc::now());
    let third = ApiKey::new(account.id, "rl_third000", None, Utc::now());
    store.insert_api_key(&second, [3; 32]).await.unwrap();
    store.insert_api_key(&third, [4; 32]).await.unwrap();

    let listed = pages(2, |page| store.list_api_keys(account.id, page)).await;
    let ids: Vec<Vec<Uuid>> = listed
        .iter()
        .map(|page| page.iter().map(|k| k.id).collect())
        .collect();
    assert_eq!(ids, [vec![third.id, second.id], vec![first.id]]);
    assert_eq!(listed[0][1], second, "the record reads back whole");
    assert_eq!(second.prefix.as_deref(), Some("rl_second00"));

    // Another account's key is not this account's to revoke.
    assert!(!store.delete_api_key(account.id, other.id).await.unwrap());
    assert!(store.account_by_key_hash([2; 32]).await.unwrap().is_some());
    assert!(store.delete_api_key(account.id, second.id).await.unwrap());
    assert!(!store.delete_api_key(account.id, second.id).await.unwrap());
    assert_eq!(store.account_by_key_hash([3; 32]).await.unwrap(), None);
    let left = store
        .list_api_keys(account.id, Paging::new(10, None))
        .await
        .unwrap();
    assert_eq!(
        left.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        [third.id, first.id]
    );
}

pub async fn touched_keys_show_last_use_and_revoked_ones_stay_gone(store: SharedStore) {
    let (account, first) = account_with_key(&store, 5).await;
    let second = ApiKey::new(account.id, "rl_second00", None, Utc::now());
    store.insert_api_key(&second, [6; 32]).await.unwrap();
    assert!(store.delete_api_key(account.id, second.id).await.unwrap());

    let at = Utc::now() + Duration::seconds(5);
    let touch = |key: &ApiKey| {
        (
            KeyOwner {
                account: account.id,
                key: key.id,
            },
            at,
        )
    };
    store
        .touch_api_keys(&[touch(&first), touch(&second)])
        .await
        .unwrap();
    let listed = store
        .list_api_keys(account.id, Paging::new(10, None))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1, "the revoked key did not come back");
    assert_eq!(
        listed[0].last_used_at.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    assert_eq!(store.account_by_key_hash([6; 32]).await.unwrap(), None);
}

pub async fn meta_set_overwrites(store: SharedStore) {
    assert_eq!(store.meta_get_or_insert("m", "one").await.unwrap(), "one");
    store.meta_set("m", "two").await.unwrap();
    assert_eq!(store.meta_get_or_insert("m", "three").await.unwrap(), "two");
    store.meta_set("fresh", "x").await.unwrap();
    assert_eq!(store.meta_get_or_insert("fresh", "y").await.unwrap(), "x");
}
