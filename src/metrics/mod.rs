//! Every metric the server exports, declared and described once here:
//! `relurl_<subsystem>_<name>_<unit>[_total]`, labels from small fixed sets only
//! (route, status, outcome, operation, event type, shard index).
//!
//! Two ways to record, both defined in this module:
//! - hot paths hold pre-registered handles from the structs below, so recording
//!   is an atomic add;
//! - failures and other notable happenings are typed [`events`] whose `emit()`
//!   writes the log line and counts it together.

// Handle structs register their series when built; a `Default` would hide that.
#![allow(clippy::new_without_default)]

pub mod events;

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{events::EventType, webhooks::policy::OutcomeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Declares each metric's name constant and its row in [`ALL`] in one place,
/// so a metric cannot exist without a description.
macro_rules! declare {
    ($($konst:ident: $kind:ident = $name:literal, $help:literal;)*) => {
        $(pub const $konst: &str = $name;)*
        /// Every metric: name, kind, description.
        pub const ALL: &[(&str, Kind, &str)] = &[$(($name, Kind::$kind, $help)),*];
    };
}

declare! {
    HTTP_REQUESTS: Counter = "relurl_http_requests_total",
        "HTTP requests by route and status";
    HTTP_KEY_LOOKUPS: Counter = "relurl_http_auth_key_lookups_total",
        "API key lookups in the store by outcome (found, unknown)";
    HTTP_RATE_LIMITED: Counter = "relurl_http_rate_limited_total",
        "requests answered 429 by limit (account, expensive, failed_auth)";
    HTTP_ACCEPT_ERRORS: Counter = "relurl_http_accept_errors_total",
        "connections the listener failed to accept";
    HTTP_CONNECTIONS_REFUSED: Counter = "relurl_http_connections_refused_total",
        "connections closed at once because server.max_connections were open";
    CLICKS_FORWARDED_FOR_IGNORED: Counter = "relurl_clicks_forwarded_for_ignored_total",
        "clicks from private or loopback peers carrying X-Forwarded-For while server.trusted_proxies is empty";
    HTTP_STREAMS_DROPPED: Counter = "relurl_http_click_streams_dropped_total",
        "live click streams closed because their reader fell behind its bounded queue";
    REDIRECT_LATENCY: Histogram = "relurl_redirect_latency_seconds",
        "time to answer a redirect";
    REDIRECT_RESPONSES: Counter = "relurl_redirect_responses_total",
        "redirect answers by status";
    CACHE_LOOKUPS: Counter = "relurl_link_cache_lookups_total",
        "link cache lookups by result (hit, miss)";
    CACHE_EVICTIONS: Counter = "relurl_link_cache_evictions_total",
        "links evicted from the cache";
    CACHE_ENTRIES: Gauge = "relurl_link_cache_entries",
        "entries in the link cache after the last sweep";
    CACHE_STALE: Counter = "relurl_link_cache_stale_answers_total",
        "redirects answered from a cached link past its TTL because the store was unreachable";
    STORE_ERRORS: Counter = "relurl_store_errors_total",
        "store operations that failed, by operation";
    CLICKS_RECEIVED: Counter = "relurl_clicks_received_total",
        "clicks handed to the click pipeline";
    CLICKS_PERSISTED: Counter = "relurl_clicks_persisted_total",
        "clicks written with their detail";
    CLICKS_SHED: Counter = "relurl_clicks_shed_total",
        "clicks counted but whose detail was shed under overload";
    CLICKS_BATCH_SIZE: Histogram = "relurl_clicks_batch_size",
        "clicks per store batch";
    CLICKS_FLUSH_LATENCY: Histogram = "relurl_clicks_flush_latency_seconds",
        "time to write one click batch";
    CLICKS_FLUSH_ERRORS: Counter = "relurl_clicks_flush_errors_total",
        "click batches the store refused (retried)";
    CLICKS_QUEUE_DEPTH: Gauge = "relurl_clicks_shard_queue_depth",
        "clicks queued per shard";
    SHARD_RESTARTS: Counter = "relurl_clicks_shard_restarts_total",
        "click shard actors restarted by their supervisor";
    SHARDS_FAILING: Gauge = "relurl_clicks_shards_failing",
        "click shards down after too many restarts, waiting for the restart window";
    FRAUD_WINDOWS: Gauge = "relurl_fraud_windows_tracked",
        "(link, ip range) windows tracked by the fraud detector";
    FRAUD_WINDOWS_EVICTED: Counter = "relurl_fraud_windows_evicted_total",
        "fraud windows evicted (least used first) to stay within fraud.max_tracked_keys";
    FRAUD_CLICKS_UNTRACKED: Counter = "relurl_fraud_clicks_untracked_total",
        "clicks not counted for fraud because the window cap was reached";
    FRAUD_LINKS_DISABLED: Counter = "relurl_fraud_links_disabled_total",
        "links disabled by the fraud detector";
    FRAUD_RANGES_BLOCKED: Counter = "relurl_fraud_ranges_blocked_total",
        "(link, ip range) pairs blocked by the fraud detector";
    FRAUD_CLICKS_BLOCKED: Counter = "relurl_fraud_clicks_blocked_total",
        "clicks redirected but not stored, counted or forwarded because their range is blocked on the link";
    FRAUD_OBSERVATIONS_DROPPED: Counter = "relurl_fraud_observations_dropped_total",
        "persisted clicks not checked for fraud because the detector's queue was full";
    EVENTS_PUBLISHED: Counter = "relurl_events_published_total",
        "events published on the internal bus by type";
    WEBHOOK_DELIVERIES: Counter = "relurl_webhook_deliveries_total",
        "delivery attempts by outcome";
    WEBHOOK_ATTEMPT_LATENCY: Histogram = "relurl_webhook_attempt_latency_seconds",
        "time for one delivery attempt";
    WEBHOOK_RETRIES: Counter = "relurl_webhook_retries_scheduled_total",
        "delivery retries scheduled";
    WEBHOOK_PENDING: Gauge = "relurl_webhook_pending_deliveries",
        "deliveries held in memory by endpoint actors";
    WEBHOOK_DEAD: Counter = "relurl_webhook_dead_deliveries_total",
        "deliveries given up after the last retry";
    WEBHOOK_ENDPOINTS_DISABLED: Counter = "relurl_webhook_endpoints_disabled_total",
        "endpoints disabled automatically after failed deliveries";
    WEBHOOK_RESTARTS: Counter = "relurl_webhook_actor_restarts_total",
        "endpoint actors restarted by their supervisor";
    WEBHOOK_FAILING: Gauge = "relurl_webhook_endpoints_failing",
        "endpoint actors down after too many restarts or a failed reload, waiting for the restart window";
    WEBHOOK_SPILLED: Counter = "relurl_webhook_spilled_total",
        "deliveries left only in the outbox because their endpoint's mailbox was full or down";
    WEBHOOK_SAVE_ERRORS: Counter = "relurl_webhook_outcome_save_errors_total",
        "batches of delivery outcomes not written";
    EXPIRIES_FIRED: Counter = "relurl_links_expired_total",
        "link.expired events fired";
    CLUSTER_LIVE_NODES: Gauge = "relurl_cluster_live_nodes", "nodes whose heartbeat row is present (this one included)";
    CLUSTER_LEASES_HELD: Gauge = "relurl_cluster_leases_held", "leases this node holds (endpoint actors, the expiry singleton)";
    CLUSTER_HANDOVERS: Counter = "relurl_cluster_handovers_total",
        "leases this node took (at its start, and from nodes that left, returned or fell behind)";
    CLUSTER_FEED_LAG: Gauge = "relurl_cluster_change_feed_lag_seconds",
        "how long since this node last read the change feed completely";
    CLUSTER_ERRORS: Counter = "relurl_cluster_errors_total", "cluster table calls that failed, by operation";
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SIZE_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS)
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                // Bucket lists are constants; an error here is a programming error.
                Err(e) => panic!("metric buckets rejected: {e}"),
            };
            let handle = recorder.handle();
            // Another recorder (a test harness) may already be installed: keep ours readable.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            events::register();
            register_auth();
            // Descriptions are published on upkeep; the first scrape should have them.
            handle.run_upkeep();
            handle
        })
        .clone()
}

fn describe() {
    for &(name, kind, help) in ALL {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

pub fn http_request(route: &'static str, status: u16) {
    counter!(HTTP_REQUESTS, "route" => route, "status" => status_label(status)).increment(1);
}

/// Labels of [`rate_limited`]: one per limit in `http::limits`.
pub const RATE_LIMITS: [&str; 3] = ["account", "expensive", "failed_auth"];

/// The auth series exist from the start, at zero.
fn register_auth() {
    for outcome in ["found", "unknown"] {
        counter!(HTTP_KEY_LOOKUPS, "outcome" => outcome).increment(0);
    }
    for limit in RATE_LIMITS {
        counter!(HTTP_RATE_LIMITED, "limit" => limit).increment(0);
    }
}

pub fn key_lookup(found: bool) {
    let outcome = if found { "found" } else { "unknown" };
    counter!(HTTP_KEY_LOOKUPS, "outcome" => outcome).increment(1);
}

pub fn rate_limited(limit: &'static str) {
    counter!(HTTP_RATE_LIMITED, "limit" => limit).increment(1);
}

/// Statuses we answer are a small fixed set; anything else is folded into its class.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        410 => "410",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// A struct of pre-registered handles, each with the call that registers it,
/// and the `new()` that does.
macro_rules! handles {
    ($(#[$attr:meta])* $name:ident { $($field:ident: $ty:ty = $make:expr,)* }) => {
        $(#[$attr])*
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl $name {
            pub fn new() -> Self {
                Self { $($field: $make,)* }
            }
        }
    };
}

/// One counter per value of a small fixed label set, registered up front so
/// the hot path never hashes a key.
#[derive(Clone)]
pub struct CounterPer<K: 'static, const N: usize> {
    keys: &'static [K; N],
    counters: [Counter; N],
}

impl<K: Copy + PartialEq, const N: usize> CounterPer<K, N> {
    fn new(keys: &'static [K; N], register: impl Fn(K) -> Counter) -> Self {
        Self {
            keys,
            counters: keys.map(register),
        }
    }

    pub fn get(&self, key: K) -> Option<&Counter> {
        let i = self.keys.iter().position(|k| *k == key)?;
        self.counters.get(i)
    }

    /// Counts one for `key`; a key outside the set is not counted (an enum's
    /// `ALL` leaves none out).
    pub fn count(&self, key: K) {
        if let Some(counter) = self.get(key) {
            counter.increment(1);
        }
    }
}

handles! {
    /// Link cache lookups and sweeps.
    #[derive(Clone)]
    CacheMetrics {
        hits: Counter = counter!(CACHE_LOOKUPS, "result" => "hit"),
        misses: Counter = counter!(CACHE_LOOKUPS, "result" => "miss"),
        evictions: Counter = counter!(CACHE_EVICTIONS),
        entries: Gauge = gauge!(CACHE_ENTRIES),
    }
}

/// The statuses a redirect answers with, each counted apart; others are "other".
const REDIRECT_STATUSES: [u16; 8] = [301, 302, 307, 308, 404, 410, 500, 503];

handles! {
    /// Redirect answers, pre-registered per status.
    #[derive(Clone)]
    RedirectMetrics {
        latency: Histogram = histogram!(REDIRECT_LATENCY),
        by_status: CounterPer<u16, 8> = CounterPer::new(&REDIRECT_STATUSES, |s| {
            counter!(REDIRECT_RESPONSES, "status" => s.to_string())
        }),
        other: Counter = counter!(REDIRECT_RESPONSES, "status" => "other"),
    }
}

impl RedirectMetrics {
    pub fn response(&self, status: u16) -> &Counter {
        self.by_status.get(status).unwrap_or(&self.other)
    }
}

/// One click shard's queue, as the redirect handler sees it.
pub struct ClickQueueMetrics {
    pub depth: Gauge,
    pub received: Counter,
    pub shed: Counter,
}

impl ClickQueueMetrics {
    pub fn new(shard: usize) -> Self {
        Self {
            depth: gauge!(CLICKS_QUEUE_DEPTH, "shard" => shard.to_string()),
            received: counter!(CLICKS_RECEIVED),
            shed: counter!(CLICKS_SHED),
        }
    }
}

handles! {
    /// What a click shard records per written batch (refusals are [`events::ClickFlushRefused`]).
    ClickFlushMetrics {
        persisted: Counter = counter!(CLICKS_PERSISTED),
        batch_size: Histogram = histogram!(CLICKS_BATCH_SIZE),
        flush_latency: Histogram = histogram!(CLICKS_FLUSH_LATENCY),
    }
}

handles! {
    /// The fraud detector's windows (disabled links are [`events::LinkDisabledForFraud`]).
    FraudMetrics {
        tracked: Gauge = gauge!(FRAUD_WINDOWS),
        evicted: Counter = counter!(FRAUD_WINDOWS_EVICTED),
        untracked: Counter = counter!(FRAUD_CLICKS_UNTRACKED),
        dropped: Counter = counter!(FRAUD_OBSERVATIONS_DROPPED),
    }
}

handles! {
    /// Events published on the internal bus, one counter per type.
    #[derive(Clone)]
    EventBusMetrics {
        published: CounterPer<EventType, { EventType::ALL.len() }> =
            CounterPer::new(&EventType::ALL, |t| counter!(EVENTS_PUBLISHED, "type" => t.as_str())),
    }
}

handles! {
    /// Webhook delivery metrics, pre-registered (failures and restarts are [`events`]).
    #[derive(Clone)]
    WebhookMetrics {
        outcomes: CounterPer<OutcomeKind, { OutcomeKind::ALL.len() }> =
            CounterPer::new(&OutcomeKind::ALL, |k| counter!(WEBHOOK_DELIVERIES, "outcome" => k.as_str())),
        latency: Histogram = histogram!(WEBHOOK_ATTEMPT_LATENCY),
        retries: Counter = counter!(WEBHOOK_RETRIES),
        pending: Gauge = gauge!(WEBHOOK_PENDING),
        dead: Counter = counter!(WEBHOOK_DEAD),
    }
}

#[cfg(test)]
mod tests;

/// Cluster mode (scylla backend): membership, leases, the change feed.
#[derive(Clone)]
pub struct ClusterMetrics {
    pub live_nodes: Gauge,
    pub leases_held: Gauge,
    pub feed_lag: Gauge,
}

impl ClusterMetrics {
    pub fn new() -> Self {
        Self {
            live_nodes: gauge!(CLUSTER_LIVE_NODES),
            leases_held: gauge!(CLUSTER_LEASES_HELD),
            feed_lag: gauge!(CLUSTER_FEED_LAG),
        }
    }
}

/// A live click stream's reader fell behind its bounded queue: it is sent
/// `event: dropped` and closed.
pub struct ClickStreamDropped {
    pub account: uuid::Uuid,
}

impl ClickStreamDropped {
    pub fn emit(self) {
        metrics::counter!(HTTP_STREAMS_DROPPED).increment(1);
        tracing::info!(account = %self.account, "live click stream dropped: its reader fell behind");
    }
}
