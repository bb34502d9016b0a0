//! The scylla store: ScyllaDB (or Apache Cassandra 4/5) through the `scylla` driver.
//!
//! Owns the CQL layout (`schema.cql`, applied idempotently at start-up), the
//! prepared statements (prepared once, at open) and the mapping of every [`Store`]
//! call onto them, with the same semantics as the embedded store.
//!
//! How writes go: every call groups its writes by partition key and sends each
//! group as a single-partition unlogged batch (counters in their own counter
//! batch; a big group as several, never splitting an outbox row from its index
//! row), groups running concurrently. Where order matters (a link row before
//! the expiry row that points at it, counters last) calls run phases one after
//! the other. Codes and meta values are claimed with lightweight transactions;
//! link rows are only ever written through them (no LWT/plain timestamp mixing).
//!
//! How listings page: the driver's paging state, wrapped in base64url, is the
//! API cursor. Day-bucketed logs (clicks, attempts) also carry the day bucket in
//! the cursor and walk the days listed in a small per-link/per-endpoint day index.
//!
//! Expiries: rows sit in hour buckets; a low-water mark in `meta` says below which
//! hour every bucket is known to be empty, so `due_expiries` scans from the mark
//! (however long the server was down) and never from the beginning of time.
//!
//! This file maps each [`Store`] call; the rest is by what it holds: `statements`
//! (schema and prepared statements), `writes` (partition-grouped batches), `reads`
//! (pages, cursors' listings, shared lookups), `expiries` (the low-water mark),
//! `codec` (JSON, click records, keys, cursors), `errors` (transient or permanent).

mod codec;
mod errors;
mod expiries;
mod keys;
mod reads;
mod rollups;
mod statements;
mod writes;

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use scylla::{
    client::{session::Session, session_builder::SessionBuilder},
    value::Counter,
};
use uuid::Uuid;

use super::{
    AttemptsOf, ClickBatch, CreatedWindow, EndpointChange, EndpointWrite, HourRollup, Page, Paging,
    StatsScope, Store, StoreError, StoreResult, sealing::Sealer,
};
use crate::domain::{
    Account, AccountId, ApiKey, Attempt, Click, Delivery, DeliveryUpdate, Endpoint, Incident,
    KeyOwner, Link,
};
use codec::{
    FAILED_DUE, HOUR_MS, click_record, day_of, due_of, expiry_bucket, first_row, from_json,
    hour_of, lwt_outcome, rows, to_json,
};
use errors::corrupt;
use expiries::EXPIRY_MARK_KEY;
use reads::{Keep, READ_CONCURRENCY, concurrently, decode_clicks, parse_all};
use statements::{Statements, schema_statements, ttl_secs};
use writes::Writes;

/// The mark only passes an hour bucket this long after the hour ended: an expiry
/// row written "now" (see [`expiry_bucket`]) has landed by then, even with some
/// clock skew between nodes.
const EXPIRY_GRACE_MS: i64 = 10 * 60_000;
/// Failed outbox rows read per round trip when looking for a recovery window.
const FAILED_PAGE: usize = 1000;

/// Where and how to connect; built from `[store]` by [`ScyllaOptions::from_config`].
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Created when missing.
    pub keyspace: String,
    pub replication_factor: u32,
    /// Clicks expire this long after they are written.
    pub click_ttl: Duration,
    /// Delivery attempts expire this long after they are written.
    pub attempt_ttl: Duration,
}

impl ScyllaOptions {
    pub fn from_config(store: &crate::config::StoreConfig) -> Self {
        Self {
            nodes: store.scylla_nodes.clone(),
            keyspace: store.scylla_keyspace.clone(),
            replication_factor: store.scylla_replication_factor,
            click_ttl: store.click_ttl,
            attempt_ttl: store.attempt_ttl,
        }
    }
}

#[derive(Clone)]
pub struct ScyllaStore {
    inner: Arc<Inner>,
    sealer: Sealer,
}

struct Inner {
    /// Shared with the cluster tables (same keyspace).
    session: Arc<Session>,
    st: Statements,
    /// TTLs in seconds, as CQL binds them; the day markers outlive their day's rows.
    click_ttl: i32,
    click_day_ttl: i32,
    attempt_ttl: i32,
    attempt_day_ttl: i32,
}

impl ScyllaStore {
    /// Connects, applies the schema (waiting for schema agreement) and prepares
    /// every statement.
    pub async fn open(options: &ScyllaOptions) -> StoreResult<Self> {
        let session = SessionBuilder::new()
            .known_nodes(&options.nodes)
            .connection_timeout(Duration::from_secs(5))
            // Only our keyspace's metadata is needed (token-aware routing).
            .keyspaces_to_fetch([options.keyspace.clone()])
            .build()
            .await
            .map_err(|e| {
                errors::connect(
                    format!("cannot connect to CQL nodes {}", options.nodes.join(", ")),
                    e,
                )
            })?;
        for statement in schema_statements(&options.keyspace, options.replication_factor) {
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .map_err(|e| errors::execution(format!("applying schema `{statement}`"), e))?;
        }
        session
            .await_schema_agreement()
            .await
            // Agreement times out while nodes catch up: worth another try.
            .map_err(|e| StoreError::transient("waiting for schema agreement", e))?;
        let st = Statements::prepare(&session, &options.keyspace).await?;
        let day = Duration::from_secs(86_400);
        let store = Self {
            inner: Arc::new(Inner {
                session: Arc::new(session),
                st,
                click_ttl: ttl_secs(options.click_ttl, Duration::ZERO),
                click_day_ttl: ttl_secs(options.click_ttl, day),
                attempt_ttl: ttl_secs(options.attempt_ttl, Duration::ZERO),
                attempt_day_ttl: ttl_secs(options.attempt_ttl, day),
            }),
            sealer: Sealer::default(),
        };
        store.inner.init_expiry_mark().await?;
        Ok(store)
    }
}

impl ScyllaStore {
    /// Webhook secrets are sealed with these keys from now on.
    pub fn with_sealer(self, sealer: Sealer) -> Self {
        Self { sealer, ..self }
    }

    /// The session, for cluster mode's tables in the same keyspace.
    pub fn cluster_handle(&self) -> Arc<Session> {
        self.inner.session.clone()
    }
}

impl Inner {
    /// Every endpoint's stored JSON, as written.
    async fn endpoint_texts(&self) -> StoreResult<Vec<String>> {
        let pager = self
            .session
            .execute_iter(self.st.endpoints_all.clone(), ())
            .await
            .map_err(|e| errors::pager("listing all endpoints", e))?;
        let texts: Vec<(Option<String>,)> = pager
            .rows_stream::<(Option<String>,)>()
            .map_err(corrupt)?
            .try_collect()
            .await
            .map_err(|e| errors::pager_next("listing all endpoints", e))?;
        Ok(texts.into_iter().filter_map(|(json,)| json).collect())
    }

    /// The endpoint's stored JSON, as written.
    async fn endpoint_text(&self, id: Uuid) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> = first_row(
            self.execute(&self.st.endpoint_get, (id,), "reading endpoint")
                .await?,
        )?;
        Ok(row.and_then(|(json,)| json))
    }
}

// ---------------------------------------------------------------- errors and rows

#[async_trait]
impl Store for ScyllaStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner
            .session
            .execute_unpaged(&self.inner.st.ping, ())
            .await
            .map_err(errors::backend("CQL backend not answering"))?;
        Ok(())
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        let s = &self.inner;
        let result = s
            .execute(&s.st.meta_insert, (key, value), "claiming meta value")
            .await?;
        match lwt_outcome(result)? {
            (true, _) => Ok(value.to_string()),
            (false, Some(existing)) => Ok(existing),
            (false, None) => Err(corrupt(format!("meta {key} exists without a value"))),
        }
    }

    async fn meta_set(&self, key: &str, value: &str) -> StoreResult<()> {
        let s = &self.inner;
        // meta rows are written with LWT only: claim the key, else compare-and-set
        // on the value read (another writer in between: read again).
        for _ in 0..5 {
            let result = s
                .execute(&s.st.meta_insert, (key, value), "claiming meta value")
                .await?;
            let current = match lwt_outcome(result)? {
                (true, _) => return Ok(()),
                (false, current) => current.unwrap_or_default(),
            };
            let result = s
                .execute(&s.st.meta_cas, (value, key, current), "setting meta value")
                .await?;
            if lwt_outcome(result)?.0 {
                return Ok(());
            }
        }
        Err(StoreError::transient(
            format!("setting meta {key}"),
            "value kept changing under concurrent writers",
        ))
    }

    async fn create_account(
        &self,
        account: &Account,
        key: &ApiKey,
        api_key_hash: [u8; 32],
    ) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::one(&s.st.account_insert, (account.id, to_json(account)?))?;
        s.add_key(&mut writes, key, api_key_hash)?;
        s.run(writes).await
    }

    async fn account_by_key_hash(&self, api_key_hash: [u8; 32]) -> StoreResult<Option<KeyOwner>> {
        self.inner.key_owner(api_key_hash).await
    }

    async fn insert_api_key(&self, key: &ApiKey, api_key_hash: [u8; 32]) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        s.add_key(&mut writes, key, api_key_hash)?;
        s.run(writes).await
    }

    async fn list_api_keys(&self, account: AccountId, page: Paging) -> StoreResult<Page<ApiKey>> {
        self.inner.list_keys(account, page).await
    }

    async fn delete_api_key(&self, account: AccountId, id: Uuid) -> StoreResult<bool> {
        self.inner.delete_key(account, id).await
    }

    async fn touch_api_keys(&self, used: &[(KeyOwner, DateTime<Utc>)]) -> StoreResult<()> {
        self.inner.touch_keys(used).await
    }

    async fn insert_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<bool> {
        let s = &self.inner;
        let bucket = link.expires_at.map(|at| expiry_bucket(at, Utc::now()));
        // Clicks a deleted link with this code left on the counter do not count.
        let base = s.counter(&link.code).await?;
        // The claim: of two nodes inserting one code, exactly one is applied.
        let claimed = s
            .execute(
                &s.st.link_claim,
                (link.code.as_str(), to_json(link)?, bucket, base),
                "claiming link code",
            )
            .await?;
        if !lwt_outcome(claimed)?.0 {
            return Ok(false);
        }
        let rest = async {
            let mut writes = Writes::default();
            writes.add(
                &s.st.account_link_insert,
                (link.account_id, link.created_at, link.code.clone()),
            )?;
            writes.expiry(&s.st, link, bucket)?;
            writes.deliveries(&s.st, deliveries)?;
            s.run(writes).await
        };
        if let Err(e) = rest.await {
            // Give the code back rather than leave a link that is in no listing;
            // rows already written point at nothing and are skipped or cleaned.
            let _ = s
                .execute(&s.st.link_delete, (link.code.as_str(),), "undoing link")
                .await;
            return Err(e);
        }
        Ok(true)
    }

    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>> {
        Ok(self.inner.get_link_row(code).await?.map(|(link, _)| link))
    }

    async fn update_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let json = to_json(link)?;
        let old = s.get_link_row(&link.code).await?;
        let mut writes = Writes::default();
        // Link rows are only ever written through Paxos (claimed with LWT), so
        // updates are conditional too: no mixing of LWT and plain write timestamps,
        // and a link deleted meanwhile is not brought back.
        match old {
            // A new expiry is owed its event; an unchanged one keeps its state.
            Some((old, old_bucket)) if old.expires_at != link.expires_at => {
                let bucket = link.expires_at.map(|at| expiry_bucket(at, Utc::now()));
                // The link row first: an expiry row is only ever visible after the
                // link row it matches (due_expiries treats mismatches as stale).
                let written = s
                    .execute(
                        &s.st.link_set,
                        (json, bucket, link.code.as_str()),
                        "writing link",
                    )
                    .await?;
                if lwt_outcome(written)?.0 {
                    writes.expiry(&s.st, link, bucket)?;
                    if let (Some(at), Some(bucket)) = (old.expires_at, old_bucket) {
                        writes.add(&s.st.expiry_delete, (bucket, at, link.code.clone()))?;
                    }
                }
            }
            _ => {
                s.execute(
                    &s.st.link_set_json,
                    (json, link.code.as_str()),
                    "writing link",
                )
                .await?;
            }
        }
        writes.deliveries(&s.st, deliveries)?;
        s.run(writes).await
    }

    async fn due_expiries(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Link>> {
        let s = &self.inner;
        let mut links = Vec::new();
        if limit == 0 {
            return Ok(links);
        }
        let mark = s.expiry_mark().await?;
        // Buckets that ended this long ago are complete: nothing new lands there.
        let settled = until.min(Utc::now()).timestamp_millis() - EXPIRY_GRACE_MS;
        let mut new_mark = mark;
        let mut passable = true;
        for bucket in mark..=hour_of(until) {
            let any = s.due_in_bucket(bucket, until, limit, &mut links).await?;
            if passable && !any && (bucket + 1) * HOUR_MS <= settled {
                new_mark = bucket + 1;
            } else {
                passable = false;
            }
            if links.len() >= limit {
                break;
            }
        }
        if new_mark > mark {
            // Compare-and-set: a node that read an older mark cannot move it back.
            s.execute(
                &s.st.meta_cas,
                (new_mark.to_string(), EXPIRY_MARK_KEY, mark.to_string()),
                "advancing expiry mark",
            )
            .await?;
        }
        // Rows written late into the current hour can be older than earlier buckets'.
        links.sort_by_key(|l| l.expires_at);
        links.truncate(limit);
        Ok(links)
    }

    async fn mark_expired(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        if let Some(at) = link.expires_at
            && let Some((_, Some(bucket))) = s.get_link_row(&link.code).await?
        {
            writes.add(&s.st.expiry_delete, (bucket, at, link.code.clone()))?;
        }
        writes.deliveries(&s.st, deliveries)?;
        s.run(writes).await
    }

    async fn delete_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let bucket = s.get_link_row(&link.code).await?.and_then(|(_, b)| b);
        let days = s.days(&s.st.click_days_get, link.code.as_str()).await?;
        // Through Paxos, like every write of a link row (see update_link).
        s.execute(&s.st.link_delete, (link.code.as_str(),), "deleting link")
            .await?;
        let mut writes = Writes::default();
        let code = || link.code.clone();
        // The click counter stays (see `links.count_base` in schema.cql): without
        // its link it counts for nothing, and a new link on the code starts above it.
        writes.add(
            &s.st.account_link_delete,
            (link.account_id, link.created_at, code()),
        )?;
        if let (Some(at), Some(bucket)) = (link.expires_at, bucket) {
            writes.add(&s.st.expiry_delete, (bucket, at, code()))?;
        }
        for day in days {
            writes.add(&s.st.clicks_delete_day, (code(), day))?;
        }
        writes.add(&s.st.click_days_delete, (code(),))?;
        writes.deliveries(&s.st, deliveries)?;
        s.run(writes).await?;
        s.delete_rollups(link).await
    }

    async fn list_links(&self, account: AccountId, page: Paging) -> StoreResult<Page<Link>> {
        let s = &self.inner;
        let keep: &Keep<'_, String, Link> = &|codes: Vec<String>| {
            Box::pin(async move {
                let reads: Vec<_> = codes
                    .into_iter()
                    .map(|code| async move { s.get_link_row(&code).await })
                    .collect();
                let links = concurrently(reads, READ_CONCURRENCY).await?;
                // A listing row whose link is gone is skipped, not an error.
                Ok(links
                    .into_iter()
                    .flatten()
                    .map(|(link, _)| link)
                    .filter(|link| link.account_id == account)
                    .collect())
            })
        };
        s.list_partition(&s.st.account_links_page, &(account,), &page, keep)
            .await
    }

    async fn record_clicks(&self, batch: &ClickBatch) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        let mut marked = HashSet::new();
        for click in &batch.clicks {
            let day = day_of(click.id, click.at);
            writes.add(
                &s.st.click_insert,
                (
                    click.code.clone(),
                    day,
                    click.id,
                    click_record(click),
                    s.click_ttl,
                ),
            )?;
            if marked.insert((click.code.as_str(), day)) {
                writes.add(
                    &s.st.click_day_insert,
                    (click.code.clone(), day, s.click_day_ttl),
                )?;
            }
        }
        writes.deliveries(&s.st, &batch.deliveries)?;
        s.mark_rollup_days(&mut writes, &batch.rollups)?;
        s.run(writes).await?;
        // Counters last, once everything else is durable: they are the one write
        // a retried batch cannot repeat harmlessly. Rollups ride with the click
        // counters: a crash between the two phases leaves these clicks stored
        // and delivered but neither counted nor in the stats; a counter phase
        // that times out and is retried may count some of them twice.
        let mut counters = Writes::counters();
        for (code, add) in &batch.counts {
            let add = i64::try_from(*add).map_err(corrupt)?;
            counters.add(&s.st.count_add, (Counter(add), code.clone()))?;
        }
        s.add_rollups(&mut counters, &batch.rollups)?;
        s.run(counters).await
    }

    async fn stats(
        &self,
        scope: &StatsScope,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<HourRollup>> {
        self.inner.read_rollups(scope, from_hour, to_hour).await
    }

    async fn click_count(&self, code: &str) -> StoreResult<u64> {
        let s = &self.inner;
        let (base, n) = futures::try_join!(
            async {
                let row: Option<(Option<i64>,)> = first_row(
                    s.execute(&s.st.link_count_base, (code,), "reading link")
                        .await?,
                )?;
                Ok::<_, StoreError>(row.map(|(base,)| base.unwrap_or(0)))
            },
            s.counter(code),
        )?;
        // No link, no count: the counter of a deleted link is not removed.
        Ok(base.map_or(0, |base| u64::try_from(n - base).unwrap_or(0)))
    }

    async fn list_clicks(&self, code: &str, page: Paging) -> StoreResult<Page<Click>> {
        let s = &self.inner;
        let owned = code.to_string();
        s.list_days(
            &s.st.click_days_get,
            owned.clone(),
            &s.st.clicks_page,
            move |day| Box::new((owned.clone(), day)),
            &page,
            &decode_clicks,
        )
        .await
    }

    async fn record_incident(&self, incident: &Incident) -> StoreResult<()> {
        let s = &self.inner;
        let row = (incident.account_id, incident.id, to_json(incident)?);
        s.run(Writes::one(&s.st.incident_insert, row)?).await
    }

    async fn list_incidents(
        &self,
        account: AccountId,
        page: Paging,
    ) -> StoreResult<Page<Incident>> {
        let s = &self.inner;
        let keep = &parse_all::<Incident>;
        s.list_partition(&s.st.incidents_page, &(account,), &page, keep)
            .await
    }

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let s = &self.inner;
        let stored = self.sealer.seal(endpoint);
        let row = (endpoint.id, endpoint.account_id, to_json(&stored)?);
        let mut writes = Writes::one(&s.st.endpoint_insert, row)?;
        writes.add(
            &s.st.account_endpoint_insert,
            (endpoint.account_id, endpoint.id),
        )?;
        s.run(writes).await
    }

    /// The lightweight transaction is conditional on the very text read, so
    /// any write in between (or a delete) makes it not apply.
    async fn change_endpoint_if(
        &self,
        id: Uuid,
        expected_version: u64,
        change: EndpointChange,
    ) -> StoreResult<EndpointWrite> {
        let s = &self.inner;
        let Some(text) = s.endpoint_text(id).await? else {
            return Ok(EndpointWrite::Gone);
        };
        let stored = self.sealer.open(from_json(&text)?)?;
        if stored.version != expected_version {
            return Ok(EndpointWrite::Stale);
        }
        let next = to_json(&self.sealer.seal(&change(stored)))?;
        let written = s
            .execute(&s.st.endpoint_cas, (next, id, text), "updating endpoint")
            .await?;
        Ok(match lwt_outcome(written)? {
            (true, _) => EndpointWrite::Written,
            // Not applied: changed since the read, or deleted.
            (false, _) => match s.endpoint_text(id).await? {
                Some(_) => EndpointWrite::Stale,
                None => EndpointWrite::Gone,
            },
        })
    }

    async fn delete_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let s = &self.inner;
        let id = endpoint.id;
        // A lightweight transaction like the updates, so a compare-and-set
        // racing the delete is ordered with it and cannot bring the row back.
        s.execute(&s.st.endpoint_delete, (id,), "deleting endpoint")
            .await?;
        let days = s.days(&s.st.attempt_days_get, id).await?;
        let mut writes = Writes::default();
        writes.add(&s.st.account_endpoint_delete, (endpoint.account_id, id))?;
        writes.add(&s.st.outbox_clear, (id,))?;
        writes.add(&s.st.index_clear, (id,))?;
        for day in days {
            writes.add(&s.st.attempts_delete_day, (id, day))?;
        }
        writes.add(&s.st.attempt_days_delete, (id,))?;
        s.run(writes).await
    }

    async fn get_endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>> {
        self.inner
            .endpoint_text(id)
            .await?
            .map(|json| self.sealer.open(from_json(&json)?))
            .transpose()
    }

    async fn list_endpoints(&self, account: AccountId) -> StoreResult<Vec<Endpoint>> {
        let s = &self.inner;
        let ids: Vec<(Uuid,)> = rows(
            s.execute(&s.st.account_endpoints_get, (account,), "listing endpoints")
                .await?,
        )?;
        let reads: Vec<_> = ids.into_iter().map(|(id,)| self.get_endpoint(id)).collect();
        let endpoints = concurrently(reads, READ_CONCURRENCY).await?;
        Ok(endpoints.into_iter().flatten().collect())
    }

    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        self.inner
            .endpoint_texts()
            .await?
            .iter()
            .map(|json| self.sealer.open(from_json(json)?))
            .collect()
    }

    async fn reseal_endpoints(&self) -> StoreResult<usize> {
        let s = &self.inner;
        let mut resealed = 0;
        for text in s.endpoint_texts().await? {
            let stored: Endpoint = from_json(&text)?;
            if !self.sealer.stale(&stored) {
                continue;
            }
            let id = stored.id;
            let next = to_json(&self.sealer.seal(&self.sealer.open(stored)?))?;
            // Not applied: written meanwhile, and sealed by that write.
            let written = s
                .execute(&s.st.endpoint_cas, (next, id, text), "resealing endpoint")
                .await?;
            resealed += usize::from(lwt_outcome(written)?.0);
        }
        Ok(resealed)
    }

    async fn upsert_deliveries(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let keys = deliveries
            .iter()
            .map(|d| (d.endpoint_id, d.event_id))
            .collect();
        let old = s.outbox_dues(keys).await?;
        let mut writes = Writes::default();
        for d in super::last_versions(deliveries.iter()) {
            // A row that moves leaves its old place; one that stays is overwritten
            // (deleting it in the same batch would win: same write timestamp).
            let old_due = old.get(&(d.endpoint_id, d.event_id)).copied();
            writes.unit(|w| {
                if let Some(due) = old_due
                    && due != due_of(d)
                {
                    w.add(&s.st.outbox_delete, (d.endpoint_id, due, d.event_id))?;
                }
                w.delivery(&s.st, d)
            })?;
        }
        s.run(writes).await
    }

    async fn due_deliveries(&self, endpoint: Uuid, limit: usize) -> StoreResult<Vec<Delivery>> {
        let s = &self.inner;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        // Failed rows sort last (due = i64::MAX) and are left out.
        let texts: Vec<(Option<String>,)> = rows(
            s.execute(
                &s.st.outbox_due,
                (endpoint, FAILED_DUE, limit),
                "reading outbox",
            )
            .await?,
        )?;
        texts
            .into_iter()
            .filter_map(|(json,)| json)
            .map(|json| from_json(&json))
            .collect()
    }

    async fn failed_deliveries(
        &self,
        endpoint: Uuid,
        window: CreatedWindow,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let s = &self.inner;
        let mut out = Vec::new();
        let mut from = scylla::response::PagingState::start();
        // Failed rows sit together at due = i64::MAX; the window is on the JSON.
        while out.len() < limit {
            let page = match after {
                Some(event) => {
                    let values = (endpoint, FAILED_DUE, event);
                    s.page(&s.st.outbox_failed_after, &values, from, FAILED_PAGE)
                        .await?
                }
                None => {
                    let values = (endpoint, FAILED_DUE);
                    s.page(&s.st.outbox_failed, &values, from, FAILED_PAGE)
                        .await?
                }
            };
            let (texts, next): (Vec<(Option<String>,)>, _) = page;
            for (json,) in texts {
                let delivery: Delivery = from_json(json.as_deref().unwrap_or_default())?;
                if out.len() < limit && window.holds(delivery.created_at) {
                    out.push(delivery);
                }
            }
            match next {
                Some(state) => from = state,
                None => break,
            }
        }
        Ok(out)
    }

    async fn get_delivery(&self, endpoint: Uuid, event: Uuid) -> StoreResult<Option<Delivery>> {
        let s = &self.inner;
        let Some(&due) = s
            .outbox_dues(vec![(endpoint, event)])
            .await?
            .get(&(endpoint, event))
        else {
            return Ok(None);
        };
        let row: Option<(Option<String>,)> = first_row(
            s.execute(&s.st.outbox_get, (endpoint, due, event), "reading delivery")
                .await?,
        )?;
        row.and_then(|(json,)| json)
            .map(|json| from_json(&json))
            .transpose()
    }

    async fn save_outcomes(&self, outcomes: &[(Attempt, DeliveryUpdate)]) -> StoreResult<()> {
        let s = &self.inner;
        let key = |update: &DeliveryUpdate| match update {
            DeliveryUpdate::Delivered {
                endpoint_id,
                event_id,
            } => (*endpoint_id, *event_id),
            DeliveryUpdate::Save(d) => (d.endpoint_id, d.event_id),
        };
        let keys = outcomes.iter().map(|(_, u)| key(u)).collect();
        let old = s.outbox_dues(keys).await?;
        let mut writes = Writes::default();
        let mut marked = HashSet::new();
        for (attempt, _) in outcomes {
            let day = day_of(attempt.id, attempt.at);
            writes.add(
                &s.st.attempt_insert,
                (
                    attempt.endpoint_id,
                    day,
                    attempt.id,
                    to_json(attempt)?,
                    s.attempt_ttl,
                ),
            )?;
            if marked.insert((attempt.endpoint_id, day)) {
                writes.add(
                    &s.st.attempt_day_insert,
                    (attempt.endpoint_id, day, s.attempt_day_ttl),
                )?;
            }
        }
        // Only the last outcome of each delivery counts: that is its final state.
        for update in super::last_updates(outcomes) {
            let k = key(update);
            let (endpoint, event) = k;
            let old_due = old.get(&k).copied();
            writes.unit(|w| match update {
                DeliveryUpdate::Save(d) => {
                    if let Some(due) = old_due
                        && due != due_of(d)
                    {
                        w.add(&s.st.outbox_delete, (endpoint, due, event))?;
                    }
                    w.delivery(&s.st, d)
                }
                DeliveryUpdate::Delivered { .. } => match old_due {
                    Some(due) => {
                        w.add(&s.st.outbox_delete, (endpoint, due, event))?;
                        w.add(&s.st.index_delete, (endpoint, event))
                    }
                    None => Ok(()),
                },
            })?;
        }
        s.run(writes).await
    }

    async fn list_attempts(&self, which: AttemptsOf, page: Paging) -> StoreResult<Page<Attempt>> {
        let s = &self.inner;
        let keep: &Keep<'_, String, Attempt> = &move |texts: Vec<String>| {
            Box::pin(async move {
                let mut kept = Vec::with_capacity(texts.len());
                for text in &texts {
                    let attempt: Attempt = from_json(text)?;
                    if which.keeps(&attempt) {
                        kept.push(attempt);
                    }
                }
                Ok(kept)
            })
        };
        s.list_days(
            &s.st.attempt_days_get,
            which.endpoint,
            &s.st.attempts_page,
            move |day| Box::new((which.endpoint, day)),
            &page,
            keep,
        )
        .await
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every write was acknowledged by the cluster at its consistency level.
        Ok(())
    }
}
