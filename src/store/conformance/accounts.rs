//! Conformance: the small tables: ping, meta values, accounts by key hash, fraud incidents.

use chrono::Utc;
use uuid::Uuid;

use super::fixtures::pages;
use crate::domain::{Account, ApiKey, FraudAction, Incident, KeyOwner};
use crate::store::{Paging, SharedStore};

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
    let key = ApiKey::new(account.id, "rl_first", None, account.created_at);
    store.create_account(&account, &key, [7; 32]).await.unwrap();
    assert_eq!(
        store.account_by_key_hash([7; 32]).await.unwrap(),
        Some(KeyOwner {
            account: account.id,
            key: key.id
        })
    );
    assert_eq!(store.account_by_key_hash([8; 32]).await.unwrap(), None);
}

pub async fn incidents_listed_newest_first_by_account(store: SharedStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    let actions = [FraudAction::BlockRange, FraudAction::DisableLink];
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
                action: actions[i % 2],
            })
            .await
            .unwrap();
    }
    let listed = pages(2, |page| store.list_incidents(a, page)).await;
    let codes: Vec<Vec<&str>> = listed
        .iter()
        .map(|page| page.iter().map(|i| i.code.as_str()).collect())
        .collect();
    assert_eq!(codes, [vec!["i3", "i1"], vec!["i0"]]);
    let kept: Vec<FraudAction> = listed.iter().flatten().map(|i| i.action).collect();
    assert_eq!(
        kept,
        [
            FraudAction::DisableLink,
            FraudAction::DisableLink,
            FraudAction::BlockRange
        ]
    );
    assert_eq!(
        store
            .list_incidents(b, Paging::new(10, None))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}
