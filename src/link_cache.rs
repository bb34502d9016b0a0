//! The redirect path's view of links: a bounded read-through cache over the
//! store that also remembers unknown codes for a while, so scanning random
//! codes cannot hammer the store.
//!
//! A cached link is re-read after `cache_ttl`, so a change made through another
//! node (shared ScyllaDB) is seen within that time; when the store cannot be
//! reached, the last known version keeps answering.
//!
//! `quick_cache` bounds it with S3-FIFO eviction: codes seen once (a scan)
//! leave before codes hit again. Concurrent misses for one code make one store
//! read: the first takes the key's placeholder, the others wait for what it
//! leaves. `put` and `remove` drop a pending placeholder, so a read that raced
//! with an API change is not cached.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http::{HeaderValue, StatusCode};
use quick_cache::{
    DefaultHashBuilder, Lifecycle, UnitWeighter,
    sync::{Cache, EntryAction, EntryResult, PlaceholderGuard},
};

use crate::{
    domain::{AccountId, Link},
    metrics::{CacheMetrics, events::StaleLinkServed},
    store::{SharedStore, StoreError, StoreResult},
};

/// What a redirect needs of a link, prepared once when it enters the cache.
#[derive(Debug)]
pub struct CachedLink {
    pub code: Arc<str>,
    pub account_id: AccountId,
    pub destination: Box<str>,
    pub tags: Box<[String]>,
    /// `data.link` of this link's events, serialised once.
    pub summary: Box<serde_json::value::RawValue>,
    /// `destination` as a header value, for requests without a query string.
    pub location: HeaderValue,
    pub status: StatusCode,
    pub expires_at_ms: Option<i64>,
    /// Tells this link's rollups from those of an earlier link with the same code.
    pub created_ms: i64,
    pub disabled: bool,
    loaded_at: Instant,
}

impl CachedLink {
    fn from_link(link: &Link, public_base_url: &str) -> Self {
        Self {
            code: Arc::from(link.code.as_str()),
            account_id: link.account_id,
            destination: link.destination.clone().into_boxed_str(),
            tags: link.tags.clone().into_boxed_slice(),
            summary: crate::events::link_summary_json(
                &link.code,
                &link.destination,
                &link.tags,
                public_base_url,
            ),
            // Destinations are validated as visible ASCII before they are stored;
            // an invalid one (corrupt store) redirects nowhere rather than panicking.
            location: HeaderValue::from_str(&link.destination)
                .unwrap_or_else(|_| HeaderValue::from_static("/")),
            status: StatusCode::from_u16(link.redirect_status).unwrap_or(StatusCode::FOUND),
            expires_at_ms: link.expires_at.map(|t| t.timestamp_millis()),
            created_ms: link.created_at.timestamp_millis(),
            disabled: link.disabled,
            loaded_at: Instant::now(),
        }
    }

    /// Disabled, or past `expires_at` at `now_ms` (unix millis).
    pub fn is_gone(&self, now_ms: i64) -> bool {
        self.disabled || self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

#[derive(Clone)]
enum Entry {
    Found(Arc<CachedLink>),
    Missing {
        until: Instant,
    },
    /// The last read failed; kept so the lookups that waited for it answer
    /// without a read of their own.
    Unreachable(Arc<Failure>),
}

struct Failure {
    /// The version known before the read failed.
    link: Option<Arc<CachedLink>>,
    error: String,
}

impl Entry {
    fn is_fresh(&self, now: Instant, ttl: Duration) -> bool {
        match self {
            Entry::Found(link) => now.saturating_duration_since(link.loaded_at) < ttl,
            Entry::Missing { until } => *until > now,
            Entry::Unreachable(_) => false,
        }
    }

    /// The same stored value (not an equal one): tells a lookup whether another
    /// one replaced the entry while it waited.
    fn is(&self, other: &Entry) -> bool {
        match (self, other) {
            (Entry::Found(a), Entry::Found(b)) => Arc::ptr_eq(a, b),
            (Entry::Missing { until: a }, Entry::Missing { until: b }) => a == b,
            (Entry::Unreachable(a), Entry::Unreachable(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn into_lookup(self) -> Lookup {
        match self {
            Entry::Found(link) => Lookup::Found(link),
            _ => Lookup::NotFound,
        }
    }

    fn known_link(&self) -> Option<Arc<CachedLink>> {
        match self {
            Entry::Found(link) => Some(link.clone()),
            Entry::Unreachable(failure) => failure.link.clone(),
            Entry::Missing { .. } => None,
        }
    }
}

pub enum Lookup {
    Found(Arc<CachedLink>),
    NotFound,
}

/// Counts evictions into the cache metrics.
#[derive(Clone)]
struct Evictions(metrics::Counter);

impl Lifecycle<String, Entry> for Evictions {
    type RequestState = ();

    fn begin_request(&self) {}

    fn on_evict(&self, _: &mut (), _: String, _: Entry) {
        self.0.increment(1);
    }
}

type Map = Cache<String, Entry, UnitWeighter, DefaultHashBuilder, Evictions>;
type Guard<'a> = PlaceholderGuard<'a, String, Entry, UnitWeighter, DefaultHashBuilder, Evictions>;

pub struct LinkCache {
    map: Map,
    negative_ttl: Duration,
    ttl: Duration,
    store: SharedStore,
    public_base_url: String,
    metrics: CacheMetrics,
}

impl LinkCache {
    pub fn new(
        store: SharedStore,
        capacity: usize,
        negative_ttl: Duration,
        ttl: Duration,
        public_base_url: &str,
    ) -> Self {
        let metrics = CacheMetrics::new();
        Self {
            map: Cache::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                DefaultHashBuilder::default(),
                Evictions(metrics.evictions.clone()),
            ),
            ttl,
            public_base_url: public_base_url.to_string(),
            negative_ttl,
            store,
            metrics,
        }
    }

    pub async fn lookup(&self, code: &str) -> StoreResult<Lookup> {
        self.lookup_at(code, Instant::now()).await
    }

    /// `lookup` with the caller's clock reading (the redirect path has one already).
    pub async fn lookup_at(&self, code: &str, now: Instant) -> StoreResult<Lookup> {
        let seen = match self.map.get(code) {
            Some(entry) if entry.is_fresh(now, self.ttl) => {
                self.metrics.hits.increment(1);
                return Ok(entry.into_lookup());
            }
            seen => seen,
        };
        self.metrics.misses.increment(1);
        let found = self
            .map
            .entry_async(code, |_, entry| {
                // Fresh, or left by a read that finished while this lookup waited.
                if entry.is_fresh(now, self.ttl) || !seen.as_ref().is_some_and(|s| s.is(entry)) {
                    EntryAction::Retain(entry.clone())
                } else {
                    EntryAction::ReplaceWithGuard
                }
            })
            .await;
        match found {
            EntryResult::Retained(entry) => self.waited_for(entry),
            EntryResult::Replaced(guard, old) => self.load(code, guard, old.known_link()).await,
            EntryResult::Vacant(guard) => self.load(code, guard, None).await,
            // Neither happens without a timeout or an `EntryAction::Remove`.
            EntryResult::Removed(..) | EntryResult::Timeout => {
                self.read(code).await.map(|(_, l)| l)
            }
        }
    }

    /// What another lookup's read left behind.
    fn waited_for(&self, entry: Entry) -> StoreResult<Lookup> {
        match entry {
            Entry::Unreachable(failure) => match &failure.link {
                Some(link) => {
                    StaleLinkServed {
                        code: &link.code,
                        error: &failure.error,
                    }
                    .emit();
                    Ok(Lookup::Found(link.clone()))
                }
                None => Err(StoreError::transient(
                    "another lookup's read of this link",
                    failure.error.clone(),
                )),
            },
            entry => Ok(entry.into_lookup()),
        }
    }

    /// Reads `code` for everyone waiting on `guard`; `known` answers (stale) if
    /// the store cannot.
    async fn load(
        &self,
        code: &str,
        guard: Guard<'_>,
        known: Option<Arc<CachedLink>>,
    ) -> StoreResult<Lookup> {
        let (entry, result) = match self.read(code).await {
            Ok((entry, lookup)) => (entry, Ok(lookup)),
            Err(e) => {
                let failure = Failure {
                    link: known.clone(),
                    error: e.to_string(),
                };
                let result = match known {
                    Some(link) => {
                        StaleLinkServed { code, error: &e }.emit();
                        Ok(Lookup::Found(link))
                    }
                    None => Err(e),
                };
                (Entry::Unreachable(Arc::new(failure)), result)
            }
        };
        // Err: `put` or `remove` took the key meanwhile; this read may be stale.
        let _ = guard.insert(entry);
        self.metrics.entries.set(self.map.len() as f64);
        result
    }

    async fn read(&self, code: &str) -> StoreResult<(Entry, Lookup)> {
        Ok(match self.store.get_link(code).await? {
            Some(link) => {
                let cached = Arc::new(CachedLink::from_link(&link, &self.public_base_url));
                (Entry::Found(cached.clone()), Lookup::Found(cached))
            }
            None => (
                Entry::Missing {
                    until: Instant::now() + self.negative_ttl,
                },
                Lookup::NotFound,
            ),
        })
    }

    /// Makes the cache answer with this version of the link at once.
    pub fn put(&self, link: &Link) {
        self.map.insert(
            link.code.as_str().into(),
            Entry::Found(Arc::new(CachedLink::from_link(link, &self.public_base_url))),
        );
        self.metrics.entries.set(self.map.len() as f64);
    }

    /// Forgets a deleted link (the next lookup reads the store again).
    pub fn remove(&self, code: &str) {
        self.map.remove(code);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;
    use chrono::Utc;
    use uuid::Uuid;

    fn link(code: &str) -> Link {
        Link {
            code: code.into(),
            account_id: Uuid::now_v7(),
            destination: format!("https://example.com/{code}"),
            redirect_status: 301,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            expires_at: None,
            disabled: false,
            disabled_reason: None,
            tags: vec![],
            fraud_policy: None,
        }
    }

    async fn cache(capacity: usize) -> (LinkCache, SharedStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        (
            LinkCache::new(
                store.clone(),
                capacity,
                Duration::from_secs(60),
                Duration::from_secs(60),
                "http://x",
            ),
            store,
            dir,
        )
    }

    #[tokio::test]
    async fn unknown_codes_are_remembered_until_put() {
        let (cache, store, _dir) = cache(100).await;
        assert!(matches!(cache.lookup("x").await.unwrap(), Lookup::NotFound));
        let l = link("x");
        store.insert_link(&l, &[]).await.unwrap();
        // Still remembered as missing: the store is not asked again.
        assert!(matches!(cache.lookup("x").await.unwrap(), Lookup::NotFound));
        cache.put(&l);
        match cache.lookup("x").await.unwrap() {
            Lookup::Found(c) => {
                assert_eq!(c.status, StatusCode::MOVED_PERMANENTLY);
                assert_eq!(c.location, "https://example.com/x");
            }
            Lookup::NotFound => panic!("expected the put link"),
        }
    }

    #[tokio::test]
    async fn entries_are_reread_after_their_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let cache = LinkCache::new(
            store.clone(),
            100,
            Duration::from_secs(60),
            Duration::from_millis(20),
            "http://x",
        );
        let mut l = link("ttl");
        store.insert_link(&l, &[]).await.unwrap();
        assert!(matches!(cache.lookup("ttl").await.unwrap(), Lookup::Found(c) if !c.disabled));
        // Changed behind the cache's back, as another node would.
        l.disabled = true;
        store.update_link(&l, &[]).await.unwrap();
        assert!(matches!(cache.lookup("ttl").await.unwrap(), Lookup::Found(c) if !c.disabled));
        tokio::time::sleep(Duration::from_millis(25)).await;
        assert!(matches!(cache.lookup("ttl").await.unwrap(), Lookup::Found(c) if c.disabled));
    }

    #[tokio::test]
    async fn stays_within_capacity() {
        let (cache, store, _dir) = cache(16).await;
        for i in 0..100 {
            let l = link(&format!("c{i}"));
            store.insert_link(&l, &[]).await.unwrap();
            assert!(matches!(
                cache.lookup(&l.code).await.unwrap(),
                Lookup::Found(_)
            ));
            assert!(cache.len() <= 16, "len {} after {i}", cache.len());
        }
        // Evicted entries are read through again.
        assert!(matches!(
            cache.lookup("c0").await.unwrap(),
            Lookup::Found(_)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_on_many_threads_read_the_store_once() {
        let (cache, store, _dir) = cache(100).await;
        store.insert_link(&link("one"), &[]).await.unwrap();
        let cache = Arc::new(cache);
        let lookups: Vec<_> = (0..64)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    match cache.lookup("one").await.unwrap() {
                        Lookup::Found(l) => l,
                        Lookup::NotFound => panic!("expected the stored link"),
                    }
                })
            })
            .collect();
        let mut links = Vec::new();
        for lookup in lookups {
            links.push(lookup.await.unwrap());
        }
        // Every store read builds its own CachedLink: one value means one read.
        assert!(links.iter().all(|l| Arc::ptr_eq(l, &links[0])));
    }

    /// A scan of 100,000 unknown codes, the shape of a cache-busting attack,
    /// with the hot links still asked for now and then as real traffic does.
    #[tokio::test]
    async fn a_long_scan_of_random_codes_keeps_hot_links_cached() {
        let (cache, store, _dir) = cache(1_000).await;
        let hot: Vec<Link> = (0..20).map(|i| link(&format!("hot{i}"))).collect();
        for l in &hot {
            store.insert_link(l, &[]).await.unwrap();
            for _ in 0..2 {
                assert!(matches!(cache.lookup(&l.code).await, Ok(Lookup::Found(_))));
            }
        }
        // Gone from the store: from here only the cache can answer them.
        for l in &hot {
            store.delete_link(l, &[]).await.unwrap();
        }
        for i in 0..100_000u32 {
            let code = format!("scan{i:08x}{:08x}", rand::random::<u32>());
            assert!(matches!(cache.lookup(&code).await, Ok(Lookup::NotFound)));
            if i % 1_000 == 999 {
                for l in &hot {
                    let found = cache.lookup(&l.code).await;
                    assert!(
                        matches!(found, Ok(Lookup::Found(_))),
                        "{} evicted at {i}",
                        l.code
                    );
                }
            }
        }
        assert!(cache.len() <= 1_000, "len {}", cache.len());
    }
}
