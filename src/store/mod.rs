//! Durable state behind one trait, shaped for both backends: every query names a
//! partition (account, link code) and walks one clustering order inside it.
//!
//! - [`embedded`]: fjall keyspaces under `store.path` (the default).
//! - [`conformance`]: the suite every backend must pass.

pub mod conformance;
pub mod embedded;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Account, AccountId, Click, Incident, Link};

pub use embedded::EmbeddedStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("bad cursor")]
    BadCursor,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a newest-first listing; `next_cursor` is opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Clicks of one flush and the counter increments they make, written together.
#[derive(Debug, Clone, Default)]
pub struct ClickBatch {
    /// Stored in full.
    pub clicks: Vec<Click>,
    /// Per code: how many clicks to add to its counter (includes shed clicks
    /// whose detail was not kept).
    pub counts: Vec<(String, u64)>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Stores `value` under `key` unless one is there; returns the value that stays.
    async fn meta_get_or_insert(&self, key: &str, value: &str) -> StoreResult<String>;

    async fn create_account(&self, account: &Account, api_key_hash: [u8; 32]) -> StoreResult<()>;
    async fn account_by_key_hash(&self, api_key_hash: [u8; 32]) -> StoreResult<Option<AccountId>>;

    /// Inserts the link unless its code is taken; `false` when taken.
    async fn insert_link(&self, link: &Link) -> StoreResult<bool>;
    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>>;
    /// Replaces a link that exists (same code, same account, same created_at).
    async fn update_link(&self, link: &Link) -> StoreResult<()>;
    /// Removes the link, its place in the account's listing, its counter and clicks.
    async fn delete_link(&self, link: &Link) -> StoreResult<()>;
    /// The account's links, newest first.
    async fn list_links(
        &self,
        account: AccountId,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Link>>;

    /// Writes clicks and counter increments as one durable batch.
    async fn record_clicks(&self, batch: ClickBatch) -> StoreResult<()>;
    async fn click_count(&self, code: &str) -> StoreResult<u64>;
    /// The link's clicks, newest first.
    async fn list_clicks(
        &self,
        code: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Click>>;

    async fn record_incident(&self, incident: &Incident) -> StoreResult<()>;
    /// The account's fraud incidents, newest first.
    async fn list_incidents(
        &self,
        account: AccountId,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Incident>>;

    /// Makes everything written so far durable on disk (graceful shutdown).
    async fn flush(&self) -> StoreResult<()>;
}

pub type SharedStore = Arc<dyn Store>;
