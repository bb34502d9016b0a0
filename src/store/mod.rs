//! Durable state behind one trait, shaped for both backends: every query names a
//! partition (account, link code) and walks one clustering order inside it.
//!
//! - [`embedded`]: fjall keyspaces under `store.path` (the default).
//! - [`scylla`]: ScyllaDB / Cassandra through the `scylla` driver (`schema.cql`).
//! - `conformance`: the suite every backend must pass (`test-support` feature only).
//! - [`click_codec`]: the compact click record both backends store.

pub mod click_codec;
#[cfg(feature = "test-support")]
pub mod conformance;
pub mod embedded;
pub mod rollup;
pub mod scylla;
pub mod sealing;

use std::sync::Arc;

use async_trait::async_trait;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    Account, AccountId, ApiKey, Attempt, AttemptStatus, Click, Delivery, DeliveryUpdate, Endpoint,
    Incident, KeyOwner, Link,
};

pub use embedded::EmbeddedStore;
pub use rollup::{Dim, HourRollup, StatsScope};
pub use scylla::{ScyllaOptions, ScyllaStore};

/// The error source a backend reported, kept for the log and `Error::source`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed the call. `transient`: the same call may succeed later
    /// (timeouts, unavailable or overloaded nodes, lost connections, disk I/O);
    /// otherwise it never will (a refused statement, a bad schema). The source's
    /// text is in the message too: log lines print only the top error.
    #[error("store backend error: {context}: {source}")]
    Backend {
        context: String,
        transient: bool,
        #[source]
        source: BoxError,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("bad cursor")]
    BadCursor,
}

impl StoreError {
    /// A backend failure worth retrying: the same call may succeed later.
    pub fn transient(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            context: context.into(),
            transient: true,
            source: source.into(),
        }
    }

    /// A backend failure that retrying the same call cannot fix.
    pub fn permanent(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            context: context.into(),
            transient: false,
            source: source.into(),
        }
    }

    /// Whether retrying the same call may succeed; corrupt records and bad
    /// cursors never will.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                transient: true,
                ..
            }
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a newest-first listing; `next_cursor` is opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Which page of a listing to read: at most `limit` items, after `cursor` (the
/// previous page's `next_cursor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Paging {
    pub fn new(limit: usize, cursor: Option<&str>) -> Self {
        Self {
            limit,
            cursor: cursor.map(str::to_string),
        }
    }
}

/// Which attempts to list: one endpoint's, optionally only those in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptsOf {
    pub endpoint: Uuid,
    pub status: Option<AttemptStatus>,
}

impl AttemptsOf {
    pub fn new(endpoint: Uuid, status: Option<AttemptStatus>) -> Self {
        Self { endpoint, status }
    }

    pub fn keeps(&self, attempt: &Attempt) -> bool {
        self.status.is_none_or(|s| s == attempt.status)
    }
}

/// Rows created in the half-open time range `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedWindow {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl CreatedWindow {
    pub fn holds(&self, at: DateTime<Utc>) -> bool {
        self.since <= at && at < self.until
    }
}

/// Clicks of one flush and the counter increments they make, written together.
#[derive(Debug, Clone, Default)]
pub struct ClickBatch {
    /// Stored in full.
    pub clicks: Vec<Click>,
    /// Per code: how many clicks to add to its counter (includes shed clicks
    /// whose detail was not kept).
    pub counts: Vec<(String, u64)>,
    /// The `link.clicked` deliveries these clicks owe, durable with them.
    pub deliveries: Vec<Delivery>,
    /// What the stored clicks add to their link's and account's hourly rollups.
    pub rollups: Vec<(StatsScope, HourRollup)>,
}

/// What a compare-and-set endpoint write makes of the stored endpoint.
pub type EndpointChange = Box<dyn FnOnce(Endpoint) -> Endpoint + Send>;

/// How a conditional endpoint write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointWrite {
    Written,
    /// Someone wrote the endpoint since the expected version: nothing written.
    Stale,
    /// The endpoint is deleted: nothing written.
    Gone,
}

/// What an endpoint's own actor writes: its failure streak, and the
/// auto-disable. URL, events, secrets and `enabled` otherwise belong to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    pub failed_streak: u32,
    /// Set when the actor disables the endpoint: `enabled = false`, this reason.
    pub disabled: Option<(String, DateTime<Utc>)>,
}

impl EndpointHealth {
    /// Applies the actor's fields and the next version to a stored endpoint.
    pub fn apply(&self, endpoint: &mut Endpoint) {
        endpoint.failed_streak = self.failed_streak;
        if let Some((reason, at)) = &self.disabled {
            endpoint.enabled = false;
            endpoint.disabled_reason = Some(reason.clone());
            endpoint.updated_at = *at;
        }
        endpoint.version += 1;
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Stores `value` under `key` unless one is there; returns the value that stays.
    async fn meta_get_or_insert(&self, key: &str, value: &str) -> StoreResult<String>;

    /// Overwrites a meta value (the operator's `admin-token reset`).
    async fn meta_set(&self, key: &str, value: &str) -> StoreResult<()>;

    /// The account and its first API key, together.
    async fn create_account(
        &self,
        account: &Account,
        key: &ApiKey,
        api_key_hash: [u8; 32],
    ) -> StoreResult<()>;
    /// Whose key this digest is. A key stored before keys had records gets its
    /// record here ([`ApiKey::legacy`]), so it lists and revokes like any other.
    async fn account_by_key_hash(&self, api_key_hash: [u8; 32]) -> StoreResult<Option<KeyOwner>>;
    async fn insert_api_key(&self, key: &ApiKey, api_key_hash: [u8; 32]) -> StoreResult<()>;
    /// The account's keys, newest first.
    async fn list_api_keys(&self, account: AccountId, page: Paging) -> StoreResult<Page<ApiKey>>;
    /// Removes the key and its digest at once; `false` when the account has no such key.
    async fn delete_api_key(&self, account: AccountId, id: Uuid) -> StoreResult<bool>;
    /// Sets `last_used_at` on keys that still exist (a revoked key stays gone).
    async fn touch_api_keys(&self, used: &[(KeyOwner, DateTime<Utc>)]) -> StoreResult<()>;

    /// Inserts the link and its deliveries unless the code is taken; `false` when taken.
    async fn insert_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<bool>;
    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>>;
    /// Replaces a link that exists (same code, account, created_at), with the
    /// deliveries the change owes, in one batch.
    async fn update_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()>;
    /// Links whose `expires_at` is at or before `until` and whose `link.expired`
    /// has not been written yet, soonest first.
    async fn due_expiries(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Link>>;
    /// Records that the link's expiry fired, with its deliveries, once.
    async fn mark_expired(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()>;
    /// Removes the link, its place in the account's listing, its counter,
    /// clicks and rollups, and writes the deliveries its deletion owes.
    async fn delete_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()>;
    /// The account's links, newest first.
    async fn list_links(&self, account: AccountId, page: Paging) -> StoreResult<Page<Link>>;

    /// Writes clicks and counter increments as one durable batch.
    async fn record_clicks(&self, batch: &ClickBatch) -> StoreResult<()>;
    async fn click_count(&self, code: &str) -> StoreResult<u64>;
    /// The scope's hourly rollups in hours `[from_hour, to_hour)`, oldest first;
    /// hours without clicks are absent.
    async fn stats(
        &self,
        scope: &StatsScope,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<HourRollup>>;
    /// The link's clicks, newest first.
    async fn list_clicks(&self, code: &str, page: Paging) -> StoreResult<Page<Click>>;

    async fn record_incident(&self, incident: &Incident) -> StoreResult<()>;
    /// The account's fraud incidents, newest first.
    async fn list_incidents(&self, account: AccountId, page: Paging)
    -> StoreResult<Page<Incident>>;

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()>;
    /// Compare-and-set: writes `change(stored)` only while the stored endpoint
    /// is at `expected_version` (the change sets the next version). Never
    /// creates one that is gone.
    async fn change_endpoint_if(
        &self,
        id: Uuid,
        expected_version: u64,
        change: EndpointChange,
    ) -> StoreResult<EndpointWrite>;
    /// Replaces the endpoint with `endpoint` (whose `version` the caller has set
    /// past `expected_version`) while the stored one is at `expected_version`.
    async fn update_endpoint(
        &self,
        expected_version: u64,
        endpoint: &Endpoint,
    ) -> StoreResult<EndpointWrite> {
        let endpoint = endpoint.clone();
        self.change_endpoint_if(endpoint.id, expected_version, Box::new(move |_| endpoint))
            .await
    }
    /// The endpoint actor's write: only the fields it owns ([`EndpointHealth`]),
    /// at version `expected_version + 1`, only while the stored one is at
    /// `expected_version`; an API change made meanwhile wins.
    async fn save_endpoint_health(
        &self,
        id: Uuid,
        expected_version: u64,
        health: &EndpointHealth,
    ) -> StoreResult<EndpointWrite> {
        let health = health.clone();
        let change = move |mut stored| {
            health.apply(&mut stored);
            stored
        };
        self.change_endpoint_if(id, expected_version, Box::new(change))
            .await
    }
    /// Seals every endpoint's secrets under the current key (start-up: after
    /// a key rotation, or values stored before sealing); how many it rewrote.
    async fn reseal_endpoints(&self) -> StoreResult<usize>;
    /// Removes the endpoint, its outbox and its attempts log.
    async fn delete_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()>;
    async fn get_endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>>;
    /// The account's endpoints, oldest first (a handful at most).
    async fn list_endpoints(&self, account: AccountId) -> StoreResult<Vec<Endpoint>>;
    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>>;

    /// Writes deliveries, replacing any earlier version of the same rows.
    async fn upsert_deliveries(&self, deliveries: &[Delivery]) -> StoreResult<()>;
    /// The endpoint's pending deliveries, soonest due first.
    async fn due_deliveries(&self, endpoint: Uuid, limit: usize) -> StoreResult<Vec<Delivery>>;
    async fn get_delivery(&self, endpoint: Uuid, event_id: Uuid) -> StoreResult<Option<Delivery>>;
    /// The endpoint's `failed` deliveries whose `created_at` is in
    /// `[window.since, window.until)`, at most `limit`, in outbox order (by
    /// event id), after the event `after` when given (the last one of the
    /// previous call: rows it made pending in between have left the set).
    async fn failed_deliveries(
        &self,
        endpoint: Uuid,
        window: CreatedWindow,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records attempts and what they did to their outbox rows, in one batch.
    async fn save_outcomes(&self, outcomes: &[(Attempt, DeliveryUpdate)]) -> StoreResult<()>;
    /// The endpoint's attempts log, newest first, optionally by status.
    async fn list_attempts(&self, which: AttemptsOf, page: Paging) -> StoreResult<Page<Attempt>>;

    /// Makes everything written so far durable on disk (graceful shutdown).
    async fn flush(&self) -> StoreResult<()>;
}

pub type SharedStore = Arc<dyn Store>;

/// Each delivery once, in first-seen order, at its last version: the state a
/// call that writes several versions of one row (in order) leaves. Applying each
/// version against the stored row instead would read the same old position twice
/// and leave a stray outbox row behind.
pub(crate) fn last_versions<'a>(
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Vec<&'a Delivery> {
    let mut at: std::collections::HashMap<(Uuid, Uuid), usize> = Default::default();
    let mut out: Vec<&Delivery> = Vec::new();
    for d in deliveries {
        match at.get(&(d.endpoint_id, d.event_id)) {
            Some(&i) => out[i] = d,
            None => {
                at.insert((d.endpoint_id, d.event_id), out.len());
                out.push(d);
            }
        }
    }
    out
}

/// Each delivery's last outcome in `outcomes`, in first-seen order (see [`last_versions`]).
pub(crate) fn last_updates(outcomes: &[(Attempt, DeliveryUpdate)]) -> Vec<&DeliveryUpdate> {
    let mut at: std::collections::HashMap<(Uuid, Uuid), usize> = Default::default();
    let mut out: Vec<&DeliveryUpdate> = Vec::new();
    for (_, update) in outcomes {
        let key = match update {
            DeliveryUpdate::Delivered {
                endpoint_id,
                event_id,
            } => (*endpoint_id, *event_id),
            DeliveryUpdate::Save(d) => (d.endpoint_id, d.event_id),
        };
        match at.get(&key) {
            Some(&i) => out[i] = update,
            None => {
                at.insert(key, out.len());
                out.push(update);
            }
        }
    }
    out
}
