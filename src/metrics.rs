//! Every metric the server exports, declared once: `relurl_<subsystem>_<name>_<unit>`.
//! Labels come from small fixed sets only (route, status, outcome, shard index).
//! Hot paths hold pre-registered handles, so recording is an atomic add.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "relurl_http_requests_total";
pub const REDIRECT_LATENCY: &str = "relurl_redirect_latency_seconds";
pub const REDIRECT_RESPONSES: &str = "relurl_redirect_responses_total";
pub const CACHE_LOOKUPS: &str = "relurl_link_cache_lookups_total";
pub const CACHE_EVICTIONS: &str = "relurl_link_cache_evictions_total";
pub const CACHE_ENTRIES: &str = "relurl_link_cache_entries";
pub const CACHE_STALE: &str = "relurl_link_cache_stale_answers_total";
pub const STORE_ERRORS: &str = "relurl_store_errors_total";
pub const CLICKS_RECEIVED: &str = "relurl_clicks_received_total";
pub const CLICKS_PERSISTED: &str = "relurl_clicks_persisted_total";
pub const CLICKS_SHED: &str = "relurl_clicks_shed_total";
pub const CLICKS_BATCH_SIZE: &str = "relurl_clicks_batch_size";
pub const CLICKS_FLUSH_LATENCY: &str = "relurl_clicks_flush_latency_seconds";
pub const CLICKS_FLUSH_ERRORS: &str = "relurl_clicks_flush_errors_total";
pub const CLICKS_QUEUE_DEPTH: &str = "relurl_clicks_shard_queue_depth";
pub const SHARD_RESTARTS: &str = "relurl_clicks_shard_restarts_total";
pub const SHARDS_FAILING: &str = "relurl_clicks_shards_failing";
pub const FRAUD_WINDOWS: &str = "relurl_fraud_windows_tracked";
pub const FRAUD_WINDOWS_EVICTED: &str = "relurl_fraud_windows_evicted_total";
pub const FRAUD_CLICKS_UNTRACKED: &str = "relurl_fraud_clicks_untracked_total";
pub const FRAUD_LINKS_DISABLED: &str = "relurl_fraud_links_disabled_total";
pub const FRAUD_OBSERVATIONS_DROPPED: &str = "relurl_fraud_observations_dropped_total";
pub const EVENTS_PUBLISHED: &str = "relurl_events_published_total";
pub const WEBHOOK_DELIVERIES: &str = "relurl_webhook_deliveries_total";
pub const WEBHOOK_ATTEMPT_LATENCY: &str = "relurl_webhook_attempt_latency_seconds";
pub const WEBHOOK_RETRIES: &str = "relurl_webhook_retries_scheduled_total";
pub const WEBHOOK_PENDING: &str = "relurl_webhook_pending_deliveries";
pub const WEBHOOK_DEAD: &str = "relurl_webhook_dead_deliveries_total";
pub const WEBHOOK_ENDPOINTS_DISABLED: &str = "relurl_webhook_endpoints_disabled_total";
pub const WEBHOOK_RESTARTS: &str = "relurl_webhook_actor_restarts_total";
pub const WEBHOOK_FAILING: &str = "relurl_webhook_endpoints_failing";
pub const WEBHOOK_SPILLED: &str = "relurl_webhook_spilled_total";
pub const WEBHOOK_SAVE_ERRORS: &str = "relurl_webhook_outcome_save_errors_total";
pub const EXPIRIES_FIRED: &str = "relurl_links_expired_total";

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
            // Error series exist from the start, so dashboards show 0, not "no data".
            for operation in STORE_OPERATIONS {
                counter!(STORE_ERRORS, "operation" => operation).absolute(0);
            }
            for name in [
                WEBHOOK_SPILLED,
                EXPIRIES_FIRED,
                CLICKS_SHED,
                FRAUD_OBSERVATIONS_DROPPED,
            ] {
                counter!(name).absolute(0);
            }
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status");
    describe_histogram!(REDIRECT_LATENCY, "time to answer a redirect");
    describe_counter!(REDIRECT_RESPONSES, "redirect answers by status");
    describe_counter!(CACHE_LOOKUPS, "link cache lookups by result (hit, miss)");
    describe_counter!(CACHE_EVICTIONS, "links evicted from the cache");
    describe_gauge!(
        CACHE_ENTRIES,
        "entries in the link cache after the last sweep"
    );
    describe_counter!(
        CACHE_STALE,
        "redirects answered from a cached link past its TTL because the store was unreachable"
    );
    describe_counter!(STORE_ERRORS, "store operations that failed, by operation");
    describe_counter!(CLICKS_RECEIVED, "clicks handed to the click pipeline");
    describe_counter!(CLICKS_PERSISTED, "clicks written with their detail");
    describe_counter!(
        CLICKS_SHED,
        "clicks counted but whose detail was shed under overload"
    );
    describe_histogram!(CLICKS_BATCH_SIZE, "clicks per store batch");
    describe_histogram!(CLICKS_FLUSH_LATENCY, "time to write one click batch");
    describe_counter!(
        CLICKS_FLUSH_ERRORS,
        "click batches the store refused (retried)"
    );
    describe_gauge!(CLICKS_QUEUE_DEPTH, "clicks queued per shard");
    describe_counter!(
        SHARD_RESTARTS,
        "click shard actors restarted by their supervisor"
    );
    describe_gauge!(
        SHARDS_FAILING,
        "click shards down after too many restarts, waiting for the restart window"
    );
    describe_gauge!(
        WEBHOOK_FAILING,
        "endpoint actors down after too many restarts, waiting for the restart window"
    );
    describe_gauge!(
        FRAUD_WINDOWS,
        "(link, ip range) windows tracked by the fraud detector"
    );
    describe_counter!(
        FRAUD_WINDOWS_EVICTED,
        "fraud windows evicted to stay within the cap"
    );
    describe_counter!(
        FRAUD_CLICKS_UNTRACKED,
        "clicks not counted for fraud because the window cap was reached"
    );
    describe_counter!(FRAUD_LINKS_DISABLED, "links disabled by the fraud detector");
    describe_counter!(
        FRAUD_OBSERVATIONS_DROPPED,
        "persisted clicks not checked for fraud because the detector's queue was full"
    );
    describe_counter!(
        EVENTS_PUBLISHED,
        "events published on the internal bus by type"
    );
}

/// Link cache counters.
#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub entries: Gauge,
    pub stale: Counter,
}

impl CacheMetrics {
    pub fn new() -> Self {
        Self {
            hits: counter!(CACHE_LOOKUPS, "result" => "hit"),
            misses: counter!(CACHE_LOOKUPS, "result" => "miss"),
            evictions: counter!(CACHE_EVICTIONS),
            entries: gauge!(CACHE_ENTRIES),
            stale: counter!(CACHE_STALE),
        }
    }
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Redirect answers, pre-registered per status so the hot path never hashes a key.
#[derive(Clone)]
pub struct RedirectMetrics {
    pub latency: Histogram,
    by_status: [(u16, Counter); 8],
    other: Counter,
}

impl RedirectMetrics {
    pub fn new() -> Self {
        let c = |s: u16| (s, counter!(REDIRECT_RESPONSES, "status" => s.to_string()));
        Self {
            latency: histogram!(REDIRECT_LATENCY),
            by_status: [
                c(301),
                c(302),
                c(307),
                c(308),
                c(404),
                c(410),
                c(500),
                c(503),
            ],
            other: counter!(REDIRECT_RESPONSES, "status" => "other"),
        }
    }

    pub fn response(&self, status: u16) -> &Counter {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(&self.other, |(_, c)| c)
    }
}

impl Default for RedirectMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn http_request(route: &'static str, status: u16) {
    counter!(HTTP_REQUESTS, "route" => route, "status" => status_label(status)).increment(1);
}

/// Store operations whose failures are counted (a fixed label set).
pub const STORE_OPERATIONS: [&str; 9] = [
    "get_link",
    "update_link",
    "record_clicks",
    "record_incident",
    "due_deliveries",
    "save_outcomes",
    "update_endpoint",
    "due_expiries",
    "mark_expired",
];

pub fn store_error(operation: &'static str) {
    counter!(STORE_ERRORS, "operation" => operation).increment(1);
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

/// Webhook delivery metrics, pre-registered.
#[derive(Clone)]
pub struct WebhookMetrics {
    outcomes: [Counter; 5],
    pub latency: Histogram,
    pub retries: Counter,
    pub pending: Gauge,
    pub dead: Counter,
    pub disabled: Counter,
    pub save_errors: Counter,
}

impl WebhookMetrics {
    pub fn new() -> Self {
        use crate::webhooks::policy::OutcomeKind;
        Self {
            outcomes: OutcomeKind::ALL
                .map(|k| counter!(WEBHOOK_DELIVERIES, "outcome" => k.as_str())),
            latency: histogram!(WEBHOOK_ATTEMPT_LATENCY),
            retries: counter!(WEBHOOK_RETRIES),
            pending: gauge!(WEBHOOK_PENDING),
            dead: counter!(WEBHOOK_DEAD),
            disabled: counter!(WEBHOOK_ENDPOINTS_DISABLED),
            save_errors: counter!(WEBHOOK_SAVE_ERRORS),
        }
    }

    pub fn outcome(&self, kind: crate::webhooks::policy::OutcomeKind) -> &Counter {
        let i = crate::webhooks::policy::OutcomeKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        &self.outcomes[i]
    }
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self::new()
    }
}
