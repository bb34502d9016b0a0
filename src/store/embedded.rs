//! The embedded store: fjall keyspaces under `store.path`, one per table.
//!
//! Keys mirror the CQL layout: partition key bytes first, then the clustering key
//! encoded so that byte order is the listing order (newest first = inverted time).
//! Every write is one batch flushed to the OS before it returns, so a killed
//! process loses nothing that was acknowledged.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use uuid::Uuid;

use super::{
    AttemptsOf, ClickBatch, CreatedWindow, EndpointChange, EndpointWrite, HourRollup, Page, Paging,
    StatsScope, Store, StoreError, StoreResult, click_codec, sealing::Sealer,
};
use crate::domain::{
    Account, AccountId, ApiKey, Attempt, Click, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint,
    Incident, KeyOwner, Link,
};

#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    sealer: Sealer,
}

struct Inner {
    db: Database,
    meta: Keyspace,
    accounts: Keyspace,
    /// key digest → account id ++ key id (16 bytes, account id only: a key
    /// stored before keys had records)
    api_keys: Keyspace,
    /// account id ++ inverted key id → key digest ++ key record JSON
    account_keys: Keyspace,
    links: Keyspace,
    /// account id ++ inverted created_at millis ++ code → ()
    account_links: Keyspace,
    /// code → u64 big-endian
    click_counts: Keyspace,
    /// code ++ 0x00 ++ inverted click uuid → click JSON
    clicks: Keyspace,
    /// scope key ++ 0x00 ++ hour (u64 big-endian) → the hour's encoded rollup
    rollups: Keyspace,
    /// account id ++ inverted incident uuid → incident JSON
    incidents: Keyspace,
    /// expires_at millis ++ code → () for links whose `link.expired` is still owed
    expiries: Keyspace,
    /// endpoint id → endpoint JSON
    endpoints: Keyspace,
    /// account id ++ endpoint id → ()
    account_endpoints: Keyspace,
    /// endpoint id ++ due millis (u64::MAX when failed) ++ event id → delivery JSON
    outbox: Keyspace,
    /// endpoint id ++ event id → due millis: finds a row's current key
    outbox_index: Keyspace,
    /// endpoint id ++ inverted attempt uuid → attempt JSON
    attempts: Keyspace,
    /// Serialises check-then-insert (link codes, meta values): one process owns the files.
    insert_lock: std::sync::Mutex<()>,
    /// Serialises rollup read-add-write: an account's hour is written by every shard.
    rollup_lock: std::sync::Mutex<()>,
}

/// fjall's I/O errors count as transient: a full disk or a failing write may
/// clear (space freed, device back), and a retry only costs the caller a delay
/// while its bounded queue sheds. Everything else (checksum, format, a poisoned
/// or locked database) stays until an operator acts: permanent.
impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        let io = matches!(
            e,
            fjall::Error::Io(_) | fjall::Error::Storage(fjall::LsmError::Io(_))
        );
        if io {
            StoreError::transient("fjall", e)
        } else {
            StoreError::permanent("fjall", e)
        }
    }
}

/// Memtable size per keyspace: the bound on unflushed writes held in memory.
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;
/// The block cache shared by every keyspace.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

impl EmbeddedStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::permanent(format!("cannot create {}", path.display()), e))?;
        // fjall's defaults (64 MiB memtables per keyspace, a 32 MiB block
        // cache) let a write burst hold hundreds of MiB across our keyspaces.
        let db = Database::builder(path).cache_size(CACHE_BYTES).open()?;
        let ks = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
        };
        let inner = Inner {
            meta: ks("meta")?,
            accounts: ks("accounts")?,
            api_keys: ks("api_keys")?,
            account_keys: ks("account_keys")?,
            links: ks("links")?,
            account_links: ks("account_links")?,
            click_counts: ks("click_counts")?,
            clicks: ks("clicks")?,
            rollups: ks("rollups")?,
            incidents: ks("incidents")?,
            expiries: ks("expiries")?,
            endpoints: ks("endpoints")?,
            account_endpoints: ks("account_endpoints")?,
            outbox: ks("outbox")?,
            outbox_index: ks("outbox_index")?,
            attempts: ks("attempts")?,
            insert_lock: std::sync::Mutex::new(()),
            rollup_lock: std::sync::Mutex::new(()),
            db,
        };
        Ok(Self {
            inner: Arc::new(inner),
            sealer: Sealer::default(),
        })
    }

    /// Webhook secrets are sealed with these keys from now on.
    pub fn with_sealer(self, sealer: Sealer) -> Self {
        Self { sealer, ..self }
    }

    /// Runs blocking fjall work off the async workers.
    async fn blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            // A panicked task will panic again on the same input; a cancelled one
            // (runtime shutting down) may not.
            .map_err(|e| {
                if e.is_cancelled() {
                    StoreError::transient("store task cancelled", e)
                } else {
                    StoreError::permanent("store task panicked", e)
                }
            })?
    }
}

impl EmbeddedStore {}

impl EmbeddedStore {
    fn open_all(&self, stored: Vec<Endpoint>) -> StoreResult<Vec<Endpoint>> {
        stored.into_iter().map(|e| self.sealer.open(e)).collect()
    }
}

impl Inner {
    fn batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::Buffer))
    }

    /// Writes a key's record and its digest's row.
    fn put_key(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        key: &ApiKey,
        digest: [u8; 32],
    ) -> StoreResult<()> {
        let mut record = digest.to_vec();
        record.extend_from_slice(&to_json(key)?);
        batch.insert(
            &self.account_keys,
            account_key_key(key.account_id, key.id),
            record,
        );
        batch.insert(
            &self.api_keys,
            digest.to_vec(),
            two_ids(key.account_id, key.id),
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.insert_lock)
    }
}

fn lock(mutex: &std::sync::Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    // The guarded data is (); a poisoned lock carries no broken state.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn rollup_prefix(scope: &StatsScope) -> Vec<u8> {
    let mut key = scope.key().into_bytes();
    key.push(0);
    key
}

fn rollup_key(scope: &StatsScope, hour: i64) -> Vec<u8> {
    let mut key = rollup_prefix(scope);
    key.extend_from_slice(&(hour.max(0) as u64).to_be_bytes());
    key
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn account_link_key(link: &Link) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + 8 + link.code.len());
    key.extend_from_slice(link.account_id.as_bytes());
    key.extend_from_slice(&inverted_millis(link.created_at));
    key.extend_from_slice(link.code.as_bytes());
    key
}

fn inverted_millis(at: chrono::DateTime<chrono::Utc>) -> [u8; 8] {
    (!(at.timestamp_millis() as u64)).to_be_bytes()
}

fn click_prefix(code: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(code.len() + 17);
    key.extend_from_slice(code.as_bytes());
    key.push(0);
    key
}

fn click_key(code: &str, id: Uuid) -> Vec<u8> {
    let mut key = click_prefix(code);
    key.extend(id.as_bytes().iter().map(|b| !b));
    key
}

/// Same layout as an incident's: the account, then the id inverted (newest first).
fn account_key_key(account: AccountId, id: Uuid) -> Vec<u8> {
    incident_key(account, id)
}

fn incident_key(account: AccountId, id: Uuid) -> Vec<u8> {
    let mut key = account.as_bytes().to_vec();
    key.extend(id.as_bytes().iter().map(|b| !b));
    key
}

fn expiry_key(link: &Link) -> Option<Vec<u8>> {
    let at = link.expires_at?;
    let mut key = (at.timestamp_millis().max(0) as u64).to_be_bytes().to_vec();
    key.extend_from_slice(link.code.as_bytes());
    Some(key)
}

fn two_ids(a: Uuid, b: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(a.as_bytes());
    key.extend_from_slice(b.as_bytes());
    key
}

fn due_millis(delivery: &Delivery) -> u64 {
    match delivery.status {
        DeliveryStatus::Pending => delivery.next_attempt_at.timestamp_millis().max(0) as u64,
        DeliveryStatus::Failed => u64::MAX,
    }
}

fn outbox_key(endpoint: Uuid, due: u64, event: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(endpoint.as_bytes());
    key.extend_from_slice(&due.to_be_bytes());
    key.extend_from_slice(event.as_bytes());
    key
}

fn attempt_key(attempt: &Attempt) -> Vec<u8> {
    let mut key = attempt.endpoint_id.as_bytes().to_vec();
    key.extend(attempt.id.as_bytes().iter().map(|b| !b));
    key
}

/// A delivery encoded as its outbox row and index row.
struct OutboxRow {
    key: Vec<u8>,
    value: Vec<u8>,
    index_key: Vec<u8>,
    due: u64,
}

impl OutboxRow {
    fn encode(d: &Delivery) -> StoreResult<Self> {
        let due = due_millis(d);
        Ok(Self {
            key: outbox_key(d.endpoint_id, due, d.event_id),
            value: to_json(d)?,
            index_key: two_ids(d.endpoint_id, d.event_id),
            due,
        })
    }

    fn insert(self, s: &Inner, batch: &mut fjall::OwnedWriteBatch) {
        batch.insert(&s.outbox, self.key, self.value);
        batch.insert(&s.outbox_index, self.index_key, self.due.to_be_bytes());
    }
}

impl Inner {
    /// Adds a delivery row to `batch`, removing its previous version if any.
    fn put_delivery(&self, batch: &mut fjall::OwnedWriteBatch, d: &Delivery) -> StoreResult<()> {
        self.remove_delivery(batch, d.endpoint_id, d.event_id)?;
        OutboxRow::encode(d)?.insert(self, batch);
        Ok(())
    }

    fn remove_delivery(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        endpoint: Uuid,
        event: Uuid,
    ) -> StoreResult<()> {
        let index_key = two_ids(endpoint, event);
        if let Some(due) = self.outbox_index.get(&index_key)? {
            let due: [u8; 8] = due
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("outbox index".into()))?;
            batch.remove(
                &self.outbox,
                outbox_key(endpoint, u64::from_be_bytes(due), event),
            );
            batch.remove(&self.outbox_index, index_key);
        }
        Ok(())
    }

    fn put_deliveries(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        deliveries: &[Delivery],
    ) -> StoreResult<()> {
        // New rows (the common case) have no earlier version to look up.
        for d in deliveries {
            OutboxRow::encode(d)?.insert(self, batch);
        }
        Ok(())
    }
}

fn decode_cursor(cursor: Option<&str>) -> StoreResult<Option<Vec<u8>>> {
    cursor
        .map(|c| URL_SAFE_NO_PAD.decode(c).map_err(|_| StoreError::BadCursor))
        .transpose()
}

/// Walks `prefix` in key order starting after the page's cursor (a key suffix),
/// up to its limit.
fn page_of<T>(
    keyspace: &Keyspace,
    prefix: &[u8],
    page: &Paging,
    mut load: impl FnMut(&[u8], &[u8]) -> StoreResult<Option<T>>,
) -> StoreResult<Page<T>> {
    let limit = page.limit;
    let start = match decode_cursor(page.cursor.as_deref())? {
        Some(suffix) => {
            let mut start = prefix.to_vec();
            start.extend_from_slice(&suffix);
            start.push(0); // strictly after the cursor's key
            start
        }
        None => prefix.to_vec(),
    };
    let mut items = Vec::with_capacity(limit.min(256));
    let mut last_key = None;
    let mut more = false;
    for guard in keyspace.range(start..) {
        let (key, value) = guard.into_inner()?;
        if !key.starts_with(prefix) {
            break;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        if let Some(item) = load(&key, &value)? {
            items.push(item);
            last_key = Some(key[prefix.len()..].to_vec());
        }
    }
    Ok(Page {
        items,
        next_cursor: more
            .then_some(last_key)
            .flatten()
            .map(|k| URL_SAFE_NO_PAD.encode(k)),
    })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.blocking(|s| s.meta.get("ping").map(|_| ()).map_err(Into::into))
            .await
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        let (key, value) = (key.to_string(), value.to_string());
        self.blocking(move |s| {
            let _guard = s.lock();
            if let Some(existing) = s.meta.get(&key)? {
                return String::from_utf8(existing.to_vec())
                    .map_err(|e| StoreError::Corrupt(e.to_string()));
            }
            let mut batch = s.batch();
            batch.insert(&s.meta, key.as_bytes(), value.as_bytes());
            batch.commit()?;
            Ok(value)
        })
        .await
    }

    async fn meta_set(&self, key: &str, value: &str) -> StoreResult<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.blocking(move |s| {
            let _guard = s.lock();
            let mut batch = s.batch();
            batch.insert(&s.meta, key.as_bytes(), value.as_bytes());
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_account(
        &self,
        account: &Account,
        key: &ApiKey,
        api_key_hash: [u8; 32],
    ) -> StoreResult<()> {
        let json = to_json(account)?;
        let id = account.id;
        let key = key.clone();
        self.blocking(move |s| {
            let mut batch = s.batch();
            batch.insert(&s.accounts, id.as_bytes().to_vec(), json);
            s.put_key(&mut batch, &key, api_key_hash)?;
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn account_by_key_hash(&self, api_key_hash: [u8; 32]) -> StoreResult<Option<KeyOwner>> {
        self.blocking(move |s| {
            let Some(value) = s.api_keys.get(api_key_hash)? else {
                return Ok(None);
            };
            let id = |bytes: &[u8]| {
                Uuid::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
            };
            if value.len() == 32 {
                return Ok(Some(KeyOwner {
                    account: id(&value[..16])?,
                    key: id(&value[16..])?,
                }));
            }
            // A key from before key records: give it one now, once.
            let account = id(&value)?;
            let _guard = s.lock();
            let stored = s.accounts.get(account.as_bytes())?.ok_or_else(|| {
                StoreError::Corrupt(format!("api key of a missing account {account}"))
            })?;
            let key = ApiKey::legacy(&from_json(&stored)?, api_key_hash);
            let mut batch = s.batch();
            s.put_key(&mut batch, &key, api_key_hash)?;
            batch.commit()?;
            Ok(Some(KeyOwner {
                account,
                key: key.id,
            }))
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKey, api_key_hash: [u8; 32]) -> StoreResult<()> {
        let key = key.clone();
        self.blocking(move |s| {
            let mut batch = s.batch();
            s.put_key(&mut batch, &key, api_key_hash)?;
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(&self, account: AccountId, page: Paging) -> StoreResult<Page<ApiKey>> {
        self.blocking(move |s| {
            page_of(&s.account_keys, account.as_bytes(), &page, |_, value| {
                from_json(value.get(32..).unwrap_or_default()).map(Some)
            })
        })
        .await
    }

    async fn delete_api_key(&self, account: AccountId, id: Uuid) -> StoreResult<bool> {
        self.blocking(move |s| {
            let _guard = s.lock();
            let record = account_key_key(account, id);
            let Some(value) = s.account_keys.get(&record)? else {
                return Ok(false);
            };
            let digest = value
                .get(..32)
                .ok_or_else(|| StoreError::Corrupt(format!("key record {id} has no digest")))?;
            let mut batch = s.batch();
            batch.remove(&s.api_keys, digest.to_vec());
            batch.remove(&s.account_keys, record);
            batch.commit()?;
            Ok(true)
        })
        .await
    }

    async fn touch_api_keys(&self, used: &[(KeyOwner, DateTime<Utc>)]) -> StoreResult<()> {
        let used = used.to_vec();
        self.blocking(move |s| {
            let _guard = s.lock();
            let mut batch = s.batch();
            for (owner, at) in used {
                let record = account_key_key(owner.account, owner.key);
                // Revoked meanwhile: nothing to touch, and nothing to bring back.
                let Some(value) = s.account_keys.get(&record)? else {
                    continue;
                };
                let (digest, json) = value.split_at(32.min(value.len()));
                let mut key: ApiKey = from_json(json)?;
                key.last_used_at = Some(at);
                let mut value = digest.to_vec();
                value.extend_from_slice(&to_json(&key)?);
                batch.insert(&s.account_keys, record, value);
            }
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn insert_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<bool> {
        let json = to_json(link)?;
        let link = link.clone();
        let deliveries = deliveries.to_vec();
        self.blocking(move |s| {
            let _guard = s.lock();
            if s.links.contains_key(&link.code)? {
                return Ok(false);
            }
            let mut batch = s.batch();
            batch.insert(&s.links, link.code.as_bytes(), json);
            batch.insert(&s.account_links, account_link_key(&link), []);
            if let Some(key) = expiry_key(&link) {
                batch.insert(&s.expiries, key, []);
            }
            s.put_deliveries(&mut batch, &deliveries)?;
            batch.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>> {
        let code = code.to_string();
        self.blocking(move |s| s.links.get(&code)?.map(|v| from_json(&v)).transpose())
            .await
    }

    async fn update_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let json = to_json(link)?;
        let link = link.clone();
        let deliveries = deliveries.to_vec();
        self.blocking(move |s| {
            let mut batch = s.batch();
            // A new expiry is owed its event; an unchanged one keeps its state.
            if let Some(old) = s.links.get(&link.code)? {
                let old: Link = from_json(&old)?;
                if old.expires_at != link.expires_at {
                    if let Some(key) = expiry_key(&old) {
                        batch.remove(&s.expiries, key);
                    }
                    if let Some(key) = expiry_key(&link) {
                        batch.insert(&s.expiries, key, []);
                    }
                }
            }
            batch.insert(&s.links, link.code.as_bytes(), json);
            s.put_deliveries(&mut batch, &deliveries)?;
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn due_expiries(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Link>> {
        let end = (until.timestamp_millis().max(0) as u64 + 1).to_be_bytes();
        self.blocking(move |s| {
            let mut links = Vec::new();
            for guard in s.expiries.range(..end.to_vec()) {
                let key = guard.key()?;
                if let Some(link) = s.links.get(&key[8..])? {
                    let link: Link = from_json(&link)?;
                    if expiry_key(&link).as_deref() == Some(&key[..]) {
                        links.push(link);
                    }
                }
                if links.len() == limit {
                    break;
                }
            }
            Ok(links)
        })
        .await
    }

    async fn mark_expired(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let link = link.clone();
        let deliveries = deliveries.to_vec();
        self.blocking(move |s| {
            let mut batch = s.batch();
            if let Some(key) = expiry_key(&link) {
                batch.remove(&s.expiries, key);
            }
            s.put_deliveries(&mut batch, &deliveries)?;
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let link = link.clone();
        let deliveries = deliveries.to_vec();
        self.blocking(move |s| {
            let mut batch = s.batch();
            batch.remove(&s.links, link.code.as_bytes());
            batch.remove(&s.account_links, account_link_key(&link));
            batch.remove(&s.click_counts, link.code.as_bytes());
            if let Some(key) = expiry_key(&link) {
                batch.remove(&s.expiries, key);
            }
            for guard in s.clicks.prefix(click_prefix(&link.code)) {
                batch.remove(&s.clicks, guard.key()?);
            }
            for guard in s.rollups.prefix(rollup_prefix(&StatsScope::of_link(&link))) {
                batch.remove(&s.rollups, guard.key()?);
            }
            s.put_deliveries(&mut batch, &deliveries)?;
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_links(&self, account: AccountId, page: Paging) -> StoreResult<Page<Link>> {
        self.blocking(move |s| {
            page_of(&s.account_links, account.as_bytes(), &page, |key, _| {
                // A listing row whose link is gone is skipped, not an error.
                let code = &key[16 + 8..];
                s.links.get(code)?.map(|v| from_json(&v)).transpose()
            })
        })
        .await
    }

    async fn record_clicks(&self, batch: &ClickBatch) -> StoreResult<()> {
        // Encoded here, so the blocking task owns bytes rather than a copy of the batch.
        let clicks = batch
            .clicks
            .iter()
            .map(|c| Ok((click_key(&c.code, c.id), click_codec::encode(c))))
            .collect::<StoreResult<Vec<_>>>()?;
        let deliveries = batch
            .deliveries
            .iter()
            .map(OutboxRow::encode)
            .collect::<StoreResult<Vec<_>>>()?;
        let counts = batch.counts.clone();
        let rollups: Vec<_> = batch
            .rollups
            .iter()
            .map(|(scope, rollup)| (rollup_key(scope, rollup.hour), rollup.clone()))
            .collect();
        self.blocking(move |s| {
            let mut write = s.batch();
            for (key, value) in clicks {
                write.insert(&s.clicks, key, value);
            }
            for row in deliveries {
                row.insert(s, &mut write);
            }
            // One writer per code (its shard), so read-add-write loses no increment.
            for (code, add) in &counts {
                let current = read_count(&s.click_counts, code)?;
                write.insert(
                    &s.click_counts,
                    code.as_bytes(),
                    (current + add).to_be_bytes(),
                );
            }
            // Held until the commit: another shard's read of the same account
            // hour must see this write, or one of the two increments is lost.
            let _guard = (!rollups.is_empty()).then(|| lock(&s.rollup_lock));
            for (key, add) in rollups {
                let mut rollup = match s.rollups.get(&key)? {
                    Some(stored) => HourRollup::decode(add.hour, &stored)
                        .ok_or_else(|| StoreError::Corrupt("stored rollup".into()))?,
                    None => HourRollup::new(add.hour),
                };
                rollup.merge(&add);
                write.insert(&s.rollups, key, rollup.encode());
            }
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn click_count(&self, code: &str) -> StoreResult<u64> {
        let code = code.to_string();
        self.blocking(move |s| read_count(&s.click_counts, &code))
            .await
    }

    async fn stats(
        &self,
        scope: &StatsScope,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<HourRollup>> {
        let (start, end) = (rollup_key(scope, from_hour), rollup_key(scope, to_hour));
        let hour_at = start.len() - 8;
        self.blocking(move |s| {
            let mut out = Vec::new();
            for guard in s.rollups.range(start..end) {
                let (key, value) = guard.into_inner()?;
                let hour = key
                    .get(hour_at..)
                    .and_then(|h| <[u8; 8]>::try_from(h).ok())
                    .map(|h| u64::from_be_bytes(h) as i64);
                let rollup = hour.and_then(|hour| HourRollup::decode(hour, &value));
                out.push(rollup.ok_or_else(|| StoreError::Corrupt("stored rollup".into()))?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_clicks(&self, code: &str, page: Paging) -> StoreResult<Page<Click>> {
        let prefix = click_prefix(code);
        self.blocking(move |s| {
            page_of(&s.clicks, &prefix, &page, |_, value| {
                click_codec::decode(value)
                    .map(Some)
                    .ok_or_else(|| StoreError::Corrupt("stored click".into()))
            })
        })
        .await
    }

    async fn record_incident(&self, incident: &Incident) -> StoreResult<()> {
        let json = to_json(incident)?;
        let key = incident_key(incident.account_id, incident.id);
        self.blocking(move |s| {
            let mut batch = s.batch();
            batch.insert(&s.incidents, key, json);
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_incidents(
        &self,
        account: AccountId,
        page: Paging,
    ) -> StoreResult<Page<Incident>> {
        self.blocking(move |s| {
            page_of(&s.incidents, account.as_bytes(), &page, |_, value| {
                from_json(value).map(Some)
            })
        })
        .await
    }

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let json = to_json(&self.sealer.seal(endpoint))?;
        let (id, account) = (endpoint.id, endpoint.account_id);
        self.blocking(move |s| {
            let mut batch = s.batch();
            batch.insert(&s.endpoints, id.as_bytes().to_vec(), json);
            batch.insert(&s.account_endpoints, two_ids(account, id), []);
            batch.commit()?;
            Ok(())
        })
        .await
    }

    /// The lock keeps other writers of the endpoint out between read and write.
    async fn change_endpoint_if(
        &self,
        id: Uuid,
        expected_version: u64,
        change: EndpointChange,
    ) -> StoreResult<EndpointWrite> {
        let sealer = self.sealer.clone();
        self.blocking(move |s| {
            let _guard = s.lock();
            let Some(stored) = s.endpoints.get(id.as_bytes())? else {
                return Ok(EndpointWrite::Gone);
            };
            let stored = sealer.open(from_json(&stored)?)?;
            if stored.version != expected_version {
                return Ok(EndpointWrite::Stale);
            }
            let mut batch = s.batch();
            batch.insert(
                &s.endpoints,
                id.as_bytes().to_vec(),
                to_json(&sealer.seal(&change(stored)))?,
            );
            batch.commit()?;
            Ok(EndpointWrite::Written)
        })
        .await
    }

    async fn delete_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let (id, account) = (endpoint.id, endpoint.account_id);
        self.blocking(move |s| {
            // Under the lock, so a compare-and-set cannot write it back.
            let _guard = s.lock();
            let mut batch = s.batch();
            batch.remove(&s.endpoints, id.as_bytes().to_vec());
            batch.remove(&s.account_endpoints, two_ids(account, id));
            for keyspace in [&s.outbox, &s.outbox_index, &s.attempts] {
                for guard in keyspace.prefix(id.as_bytes()) {
                    batch.remove(keyspace, guard.key()?);
                }
            }
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>> {
        let stored = self.blocking(move |s| {
            s.endpoints
                .get(id.as_bytes())?
                .map(|v| from_json(&v))
                .transpose()
        });
        stored.await?.map(|e| self.sealer.open(e)).transpose()
    }

    async fn list_endpoints(&self, account: AccountId) -> StoreResult<Vec<Endpoint>> {
        let stored = self.blocking(move |s| {
            let mut endpoints = Vec::new();
            for guard in s.account_endpoints.prefix(account.as_bytes()) {
                let key = guard.key()?;
                if let Some(v) = s.endpoints.get(&key[16..])? {
                    endpoints.push(from_json(&v)?);
                }
            }
            Ok(endpoints)
        });
        self.open_all(stored.await?)
    }

    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let stored = self.blocking(move |s| {
            s.endpoints
                .iter()
                .map(|guard| from_json(&guard.value()?))
                .collect()
        });
        self.open_all(stored.await?)
    }

    async fn reseal_endpoints(&self) -> StoreResult<usize> {
        let sealer = self.sealer.clone();
        self.blocking(move |s| {
            let _guard = s.lock();
            let mut batch = s.batch();
            let mut resealed = 0;
            for guard in s.endpoints.iter() {
                let (key, value) = guard.into_inner()?;
                let stored: Endpoint = from_json(&value)?;
                if sealer.stale(&stored) {
                    let json = to_json(&sealer.seal(&sealer.open(stored)?))?;
                    batch.insert(&s.endpoints, key.to_vec(), json);
                    resealed += 1;
                }
            }
            batch.commit()?;
            Ok(resealed)
        })
        .await
    }

    async fn upsert_deliveries(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        let deliveries = deliveries.to_vec();
        self.blocking(move |s| {
            let mut batch = s.batch();
            for d in super::last_versions(deliveries.iter()) {
                s.put_delivery(&mut batch, d)?;
            }
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn due_deliveries(&self, endpoint: Uuid, limit: usize) -> StoreResult<Vec<Delivery>> {
        self.blocking(move |s| {
            let mut out = Vec::new();
            for guard in s.outbox.prefix(endpoint.as_bytes()) {
                let (key, value) = guard.into_inner()?;
                // Failed rows sort last (due = u64::MAX): stop there.
                if key[16..24] == u64::MAX.to_be_bytes() || out.len() == limit {
                    break;
                }
                out.push(from_json(&value)?);
            }
            Ok(out)
        })
        .await
    }

    async fn failed_deliveries(
        &self,
        endpoint: Uuid,
        window: CreatedWindow,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        use std::ops::Bound::{Excluded, Included};
        self.blocking(move |s| {
            let mut out = Vec::new();
            // Failed rows sit together at due = u64::MAX, by event id.
            let start = match after {
                Some(event) => Excluded(outbox_key(endpoint, u64::MAX, event)),
                None => Included(outbox_key(endpoint, u64::MAX, Uuid::nil())),
            };
            let end = Included(outbox_key(endpoint, u64::MAX, Uuid::max()));
            for guard in s.outbox.range((start, end)) {
                if out.len() == limit {
                    break;
                }
                let delivery: Delivery = from_json(&guard.value()?)?;
                if window.holds(delivery.created_at) {
                    out.push(delivery);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_delivery(&self, endpoint: Uuid, event: Uuid) -> StoreResult<Option<Delivery>> {
        self.blocking(move |s| {
            let Some(due) = s.outbox_index.get(two_ids(endpoint, event))? else {
                return Ok(None);
            };
            let due: [u8; 8] = due
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("outbox index".into()))?;
            s.outbox
                .get(outbox_key(endpoint, u64::from_be_bytes(due), event))?
                .map(|v| from_json(&v))
                .transpose()
        })
        .await
    }

    async fn save_outcomes(&self, outcomes: &[(Attempt, DeliveryUpdate)]) -> StoreResult<()> {
        let outcomes = outcomes.to_vec();
        self.blocking(move |s| {
            let mut batch = s.batch();
            for (attempt, _) in &outcomes {
                batch.insert(&s.attempts, attempt_key(attempt), to_json(attempt)?);
            }
            // Index lookups read the stored rows, not this batch: apply each
            // delivery's final state once.
            for update in super::last_updates(&outcomes) {
                match update {
                    DeliveryUpdate::Delivered {
                        endpoint_id,
                        event_id,
                    } => s.remove_delivery(&mut batch, *endpoint_id, *event_id)?,
                    DeliveryUpdate::Save(d) => s.put_delivery(&mut batch, d)?,
                }
            }
            batch.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_attempts(&self, which: AttemptsOf, page: Paging) -> StoreResult<Page<Attempt>> {
        self.blocking(move |s| {
            page_of(&s.attempts, which.endpoint.as_bytes(), &page, |_, value| {
                let attempt: Attempt = from_json(value)?;
                Ok(which.keeps(&attempt).then_some(attempt))
            })
        })
        .await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.blocking(|s| s.db.persist(PersistMode::SyncAll).map_err(Into::into))
            .await
    }
}

fn read_count(keyspace: &Keyspace, code: &str) -> StoreResult<u64> {
    match keyspace.get(code)? {
        None => Ok(0),
        Some(bytes) => {
            let arr: [u8; 8] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("click count of {code}")))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fjall_io_errors_are_transient_the_rest_permanent() {
        let io = StoreError::from(fjall::Error::Io(std::io::Error::other("disk full")));
        assert!(io.is_transient());
        assert!(
            std::error::Error::source(&io).is_some_and(|s| s.to_string().contains("disk full"))
        );
        assert!(!StoreError::from(fjall::Error::Poisoned).is_transient());
        assert!(!StoreError::from(fjall::Error::Locked).is_transient());
    }
}
