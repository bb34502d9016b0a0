//! Rate limits on `/v1`, all governor keyed limiters: per account on every
//! request, a stricter one per account on expensive writes, and per client
//! address on requests without valid credentials. An address that used up its
//! failed-auth quota is refused before its key is looked up, so a guesser
//! costs no store read while throttled.
//!
//! Every map is bounded: idle keys are dropped (`retain_recent`) once a limiter
//! tracks more than `auth.max_tracked_clients`; past that after the sweep (a
//! flood of distinct keys), the limiter starts afresh.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ConnectInfo;
use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use http::{Method, request::Parts};

use super::error::ApiError;
use crate::{
    clicks::enrich::{MAX_FORWARDED_FOR, forwarded_tail},
    config::LimitsConfig,
    domain::AccountId,
    net::{self, Cidr},
};

/// Limiter calls between two checks of a map's size.
const SWEEP_EVERY: u64 = 1024;

/// `POST` routes that each cost real work (a store write with fan-out, an
/// outbound request, a new credential): they also draw on the expensive quota.
const EXPENSIVE: [&str; 5] = [
    "/v1/links",
    "/v1/webhooks/{id}/test",
    "/v1/webhooks/{id}/deliveries/{event_id}/retry",
    "/v1/webhooks/{id}/recover",
    "/v1/keys",
];

pub fn is_expensive(method: &Method, route: Option<&str>) -> bool {
    method == Method::POST && route.is_some_and(|r| EXPENSIVE.contains(&r))
}

/// One keyed limiter whose map stays bounded.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    quota: Quota,
    limiter: RwLock<Arc<DefaultKeyedRateLimiter<K>>>,
    calls: AtomicU64,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota, max: usize) -> Self {
        Self {
            quota,
            limiter: RwLock::new(Arc::new(DefaultKeyedRateLimiter::dashmap(quota))),
            calls: AtomicU64::new(0),
            max,
        }
    }

    /// Takes one cell for `key`; `Err(wait)` when there is none until then.
    fn check(&self, key: &K) -> Result<(), Duration> {
        let limiter = self.current();
        let outcome = limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()));
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(&limiter);
        }
        outcome
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<K>> {
        // The guarded value is an Arc swapped whole: a poisoned lock holds no half-state.
        self.limiter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn sweep(&self, limiter: &DefaultKeyedRateLimiter<K>) {
        if limiter.len() <= self.max {
            return;
        }
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() > self.max {
            let fresh = Arc::new(DefaultKeyedRateLimiter::dashmap(self.quota));
            *self.limiter.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
    }
}

fn per_second(rate: u32, burst: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// The server's limiters (one set per process).
pub struct Limits {
    requests: Keyed<AccountId>,
    expensive: Keyed<AccountId>,
    failed_auth: Keyed<Cidr>,
    /// Addresses out of failed-auth quota, and until when: refused before any lookup.
    blocked: Mutex<HashMap<Cidr, Instant>>,
    max_blocked: usize,
    trusted_proxies: Vec<Cidr>,
}

impl Limits {
    pub fn new(config: &LimitsConfig, trusted_proxies: &[Cidr]) -> Self {
        let max = config.max_tracked_clients;
        let per_min = NonZeroU32::new(config.failed_auth_per_min).unwrap_or(NonZeroU32::MIN);
        Self {
            requests: Keyed::new(per_second(config.requests_per_sec, config.burst), max),
            expensive: Keyed::new(
                per_second(
                    config.expensive_writes_per_sec,
                    config.expensive_writes_burst,
                ),
                max,
            ),
            failed_auth: Keyed::new(Quota::per_minute(per_min), max),
            blocked: Mutex::new(HashMap::new()),
            max_blocked: max,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }

    /// The client's address range as the limits see it: the same client
    /// address as click enrichment (`server.trusted_proxies` honoured), IPv6
    /// by /64 (one host's usual share).
    pub fn client(&self, parts: &Parts) -> Cidr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let forwarded = forwarded_tail(
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(http::HeaderValue::as_bytes),
            MAX_FORWARDED_FOR,
        );
        let ip = net::client_ip_of_bytes(peer, &forwarded, &self.trusted_proxies);
        net::ip_range(ip, 32, 64)
    }

    /// Refuses a client that is out of failed-auth quota, before any lookup.
    pub fn gate(&self, client: Cidr, now: Instant) -> Result<(), ApiError> {
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&client) {
            Some(&until) if until > now => Err(limited("failed_auth", until - now)),
            _ => Ok(()),
        }
    }

    /// A request without valid credentials: `answer` (a 401), or a 429 once
    /// the client's failed-auth quota is used up.
    pub fn failed(&self, client: Cidr, answer: ApiError, now: Instant) -> ApiError {
        let Err(wait) = self.failed_auth.check(&client) else {
            return answer;
        };
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.len() >= self.max_blocked {
            blocked.retain(|_, until| *until > now);
        }
        // Still full: this client is refused by the limiter after its lookup instead.
        if blocked.len() < self.max_blocked {
            blocked.insert(client, now + wait);
        }
        limited("failed_auth", wait)
    }

    /// An authenticated request: the account's quota, and the expensive one too
    /// for expensive writes.
    pub fn account(&self, account: AccountId, expensive: bool) -> Result<(), ApiError> {
        self.requests
            .check(&account)
            .map_err(|wait| limited("account", wait))?;
        if expensive {
            self.expensive
                .check(&account)
                .map_err(|wait| limited("expensive", wait))?;
        }
        Ok(())
    }
}

fn limited(limit: &'static str, wait: Duration) -> ApiError {
    crate::metrics::rate_limited(limit);
    ApiError::rate_limited(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(failed_auth_per_min: u32) -> Limits {
        let config = LimitsConfig {
            requests_per_sec: 1,
            burst: 2,
            expensive_writes_per_sec: 1,
            expensive_writes_burst: 1,
            failed_auth_per_min,
            max_tracked_clients: 4,
        };
        Limits::new(&config, &[])
    }

    fn client(last: u8) -> Cidr {
        net::ip_range(IpAddr::from([203, 0, 113, last]), 32, 64)
    }

    #[test]
    fn failed_auth_blocks_the_client_until_a_cell_frees() {
        let limits = limits(2);
        let now = Instant::now();
        let unauthorized = || ApiError::unauthorized("invalid API key");
        for _ in 0..2 {
            assert!(limits.gate(client(1), now).is_ok());
            assert_eq!(limits.failed(client(1), unauthorized(), now).status, 401);
        }
        let refused = limits.failed(client(1), unauthorized(), now);
        assert_eq!(refused.status, 429);
        let wait = refused.retry_after_secs.expect("Retry-After");
        assert!((1..=30).contains(&wait), "wait {wait}s at 2/min");
        assert_eq!(limits.gate(client(1), now).unwrap_err().status, 429);
        assert!(limits.gate(client(2), now).is_ok(), "other clients pass");
        let later = now + Duration::from_secs(31);
        assert!(limits.gate(client(1), later).is_ok());
    }

    #[test]
    fn expensive_writes_have_their_own_quota() {
        let limits = limits(10);
        let writer = AccountId::now_v7();
        assert!(limits.account(writer, true).is_ok());
        assert_eq!(limits.account(writer, true).unwrap_err().status, 429);
        let reader = AccountId::now_v7();
        assert!(limits.account(reader, false).is_ok());
        assert!(limits.account(reader, false).is_ok(), "burst 2");
        let refused = limits.account(reader, false).unwrap_err();
        assert_eq!(refused.status, 429);
        assert_eq!(refused.retry_after_secs, Some(1));
    }

    #[test]
    fn expensive_routes_are_the_named_posts() {
        assert!(is_expensive(&Method::POST, Some("/v1/links")));
        assert!(!is_expensive(&Method::GET, Some("/v1/links")));
        assert!(!is_expensive(&Method::POST, Some("/v1/webhooks")));
        assert!(!is_expensive(&Method::POST, None));
    }

    #[test]
    fn a_flood_of_keys_stays_bounded() {
        let keyed = Keyed::<u64>::new(per_second(1, 1), 4);
        for key in 0..(SWEEP_EVERY * 3) {
            let _ = keyed.check(&key);
        }
        assert!(keyed.current().len() <= SWEEP_EVERY as usize + 4);
    }
}
