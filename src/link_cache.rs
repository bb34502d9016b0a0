//! The redirect path's view of links: a bounded, lock-free read-through cache
//! over the store that also remembers unknown codes for a while, so scanning
//! random codes cannot hammer the store.
//!
//! A cached link is re-read after `cache_ttl`, so a change made through another
//! node (shared ScyllaDB) is seen within that time; when the store cannot be
//! reached, the last known version keeps answering.
//!
//! Bounded by second-chance eviction: a hit marks its entry; when the map grows
//! past capacity one sweep drops unmarked entries and clears the marks.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::{HeaderValue, StatusCode};

use crate::{
    domain::{AccountId, Link},
    metrics::{CacheMetrics, events::StaleLinkServed},
    store::{SharedStore, StoreResult},
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
    pub disabled: bool,
    loaded_at: Instant,
    recently_used: AtomicBool,
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
            disabled: link.disabled,
            loaded_at: Instant::now(),
            recently_used: AtomicBool::new(false),
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
    Missing { until: Instant },
}

pub enum Lookup {
    Found(Arc<CachedLink>),
    NotFound,
}

enum Cached {
    Fresh(Lookup),
    /// Past its TTL: re-read, but kept to answer if the store is away.
    Stale(Arc<CachedLink>),
    Absent,
}

pub struct LinkCache {
    map: papaya::HashMap<Box<str>, Entry>,
    capacity: usize,
    negative_ttl: Duration,
    ttl: Duration,
    store: SharedStore,
    public_base_url: String,
    /// Bumped by every API change, so a load that raced with it is not cached.
    generation: AtomicU64,
    sweeping: AtomicBool,
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
        Self {
            ttl,
            public_base_url: public_base_url.to_string(),
            map: papaya::HashMap::with_capacity(capacity.min(1 << 16)),
            capacity,
            negative_ttl,
            store,
            generation: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
            metrics: CacheMetrics::new(),
        }
    }

    pub async fn lookup(&self, code: &str) -> StoreResult<Lookup> {
        self.lookup_at(code, Instant::now()).await
    }

    /// `lookup` with the caller's clock reading (the redirect path has one already).
    pub async fn lookup_at(&self, code: &str, now: Instant) -> StoreResult<Lookup> {
        let stale = match self.cached(code, now) {
            Cached::Fresh(found) => {
                self.metrics.hits.increment(1);
                return Ok(found);
            }
            Cached::Stale(link) => Some(link),
            Cached::Absent => None,
        };
        self.metrics.misses.increment(1);
        match (self.load(code).await, stale) {
            (Err(error), Some(link)) => {
                StaleLinkServed {
                    code,
                    error: &error,
                }
                .emit();
                Ok(Lookup::Found(link))
            }
            (result, _) => result,
        }
    }

    fn cached(&self, code: &str, now: Instant) -> Cached {
        match self.map.pin().get(code) {
            Some(Entry::Found(link)) => {
                // Read first: writing an already-set flag would bounce the cache line.
                if !link.recently_used.load(Ordering::Relaxed) {
                    link.recently_used.store(true, Ordering::Relaxed);
                }
                if now.duration_since(link.loaded_at) < self.ttl {
                    Cached::Fresh(Lookup::Found(link.clone()))
                } else {
                    Cached::Stale(link.clone())
                }
            }
            Some(Entry::Missing { until }) if *until > now => Cached::Fresh(Lookup::NotFound),
            _ => Cached::Absent,
        }
    }

    async fn load(&self, code: &str) -> StoreResult<Lookup> {
        let generation = self.generation.load(Ordering::Acquire);
        let link = self.store.get_link(code).await?;
        let (entry, lookup) = match link {
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
        };
        let map = self.map.pin();
        map.insert(code.into(), entry);
        if self.generation.load(Ordering::Acquire) != generation {
            // An API change landed while we read: our copy may be stale.
            map.remove(code);
        }
        drop(map);
        self.evict_if_full();
        Ok(lookup)
    }

    /// Makes the cache answer with this version of the link at once.
    pub fn put(&self, link: &Link) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.pin().insert(
            link.code.as_str().into(),
            Entry::Found(Arc::new(CachedLink::from_link(link, &self.public_base_url))),
        );
        self.evict_if_full();
    }

    /// Forgets a deleted link (the next lookup reads the store again).
    pub fn remove(&self, code: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.pin().remove(code);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn evict_if_full(&self) {
        if self.map.len() <= self.capacity
            || self
                .sweeping
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = Instant::now();
        let mut evicted = 0u64;
        self.map.pin().retain(|_, entry| {
            let keep = match entry {
                Entry::Found(link) => link.recently_used.swap(false, Ordering::Relaxed),
                Entry::Missing { until } => *until > now,
            };
            evicted += u64::from(!keep);
            keep
        });
        // Everything was recently used: drop arbitrary entries until back in bounds.
        if self.map.len() > self.capacity {
            let excess = self.map.len() - self.capacity;
            let map = self.map.pin();
            let victims: Vec<Box<str>> = map.keys().take(excess).cloned().collect();
            for key in victims {
                map.remove(&key);
                evicted += 1;
            }
        }
        self.metrics.evictions.increment(evicted);
        self.metrics.entries.set(self.map.len() as f64);
        self.sweeping.store(false, Ordering::Release);
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
}
