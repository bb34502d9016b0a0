//! Telemetry events, after Vector's `internal_events`: each failure (or other
//! happening worth a log line) is a typed value whose `emit()` writes the log
//! line and counts it together, so the two cannot drift. Every series an event
//! counts is registered at 0 by [`register`], so dashboards show 0, not "no data".

use metrics::{counter, gauge};
use tracing::field::display;
use uuid::Uuid;

use super::*;
use crate::store::StoreError;

/// Store operations whose failures are counted: the `operation` label's fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    GetLink,
    UpdateLink,
    RecordClicks,
    RecordIncident,
    DueDeliveries,
    SaveOutcomes,
    GetEndpoint,
    UpdateEndpoint,
    DueExpiries,
    MarkExpired,
    /// Any store call made while answering an API request.
    Api,
    /// The readiness probe's ping.
    Ping,
}

impl StoreOp {
    pub const ALL: [StoreOp; 12] = [
        StoreOp::GetLink,
        StoreOp::UpdateLink,
        StoreOp::RecordClicks,
        StoreOp::RecordIncident,
        StoreOp::DueDeliveries,
        StoreOp::SaveOutcomes,
        StoreOp::GetEndpoint,
        StoreOp::UpdateEndpoint,
        StoreOp::DueExpiries,
        StoreOp::MarkExpired,
        StoreOp::Api,
        StoreOp::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::GetLink => "get_link",
            StoreOp::UpdateLink => "update_link",
            StoreOp::RecordClicks => "record_clicks",
            StoreOp::RecordIncident => "record_incident",
            StoreOp::DueDeliveries => "due_deliveries",
            StoreOp::SaveOutcomes => "save_outcomes",
            StoreOp::GetEndpoint => "get_endpoint",
            StoreOp::UpdateEndpoint => "update_endpoint",
            StoreOp::DueExpiries => "due_expiries",
            StoreOp::MarkExpired => "mark_expired",
            StoreOp::Api => "api",
            StoreOp::Ping => "ping",
        }
    }
}

/// Creates every series the events below count, at 0.
pub(super) fn register() {
    for operation in StoreOp::ALL {
        counter!(STORE_ERRORS, "operation" => operation.as_str()).increment(0);
    }
    for name in [
        HTTP_ACCEPT_ERRORS,
        HTTP_CONNECTIONS_REFUSED,
        HTTP_STREAMS_DROPPED,
        CLICKS_FORWARDED_FOR_IGNORED,
        CACHE_STALE,
        CLICKS_FLUSH_ERRORS,
        SHARD_RESTARTS,
        FRAUD_LINKS_DISABLED,
        FRAUD_RANGES_BLOCKED,
        FRAUD_CLICKS_BLOCKED,
        FRAUD_OBSERVATIONS_DROPPED,
        WEBHOOK_ENDPOINTS_DISABLED,
        WEBHOOK_RESTARTS,
        WEBHOOK_SPILLED,
        WEBHOOK_SAVE_ERRORS,
        EXPIRIES_FIRED,
        CLUSTER_HANDOVERS,
    ] {
        counter!(name).increment(0);
    }
    for operation in ClusterOp::ALL {
        counter!(CLUSTER_ERRORS, "operation" => operation.as_str()).increment(0);
    }
    gauge!(WEBHOOK_FAILING).increment(0.0);
    gauge!(SHARDS_FAILING).increment(0.0);
}

fn count_store_error(operation: StoreOp) {
    counter!(STORE_ERRORS, "operation" => operation.as_str()).increment(1);
}

/// A store call failed and the caller goes on without it (skips, retries
/// later, or answers 503). Context the log should keep is added with the
/// builder methods.
pub struct StoreFailed<'a> {
    operation: StoreOp,
    error: &'a StoreError,
    code: Option<&'a str>,
    endpoint: Option<Uuid>,
    items: Option<usize>,
}

impl<'a> StoreFailed<'a> {
    pub fn new(operation: StoreOp, error: &'a StoreError) -> Self {
        Self {
            operation,
            error,
            code: None,
            endpoint: None,
            items: None,
        }
    }

    /// The link the operation was about.
    pub fn code(self, code: &'a str) -> Self {
        Self {
            code: Some(code),
            ..self
        }
    }

    /// The webhook endpoint the operation was about.
    pub fn endpoint(self, endpoint: Uuid) -> Self {
        Self {
            endpoint: Some(endpoint),
            ..self
        }
    }

    /// How many records the refused batch held.
    pub fn items(self, items: usize) -> Self {
        Self {
            items: Some(items),
            ..self
        }
    }

    pub fn emit(self) {
        count_store_error(self.operation);
        let operation = self.operation.as_str();
        let (error, code, items) = (display(self.error), self.code, self.items);
        let endpoint = self.endpoint.map(display);
        // The level is part of a tracing call site, so the one line is written per level.
        macro_rules! log {
            ($level:ident) => {
                tracing::$level!(
                    operation,
                    error,
                    code,
                    endpoint,
                    items,
                    "store operation failed"
                )
            };
        }
        // A corrupt record is damage or a bug, not an outage: it wants a person.
        if matches!(self.error, StoreError::Corrupt(_)) {
            log!(error);
        } else {
            log!(warn);
        }
    }
}

/// The store refused a click batch. A transient error: the shard keeps it and
/// retries. A permanent one: retrying cannot help, the batch is dropped so the
/// ones behind it go on.
pub struct ClickFlushRefused<'a> {
    pub error: &'a StoreError,
    pub clicks: usize,
}

impl ClickFlushRefused<'_> {
    pub fn emit(self) {
        counter!(CLICKS_FLUSH_ERRORS).increment(1);
        count_store_error(StoreOp::RecordClicks);
        if self.error.is_transient() {
            tracing::warn!(error = %self.error, clicks = self.clicks, "click batch not written, will retry");
        } else {
            tracing::error!(error = %self.error, clicks = self.clicks, "click batch dropped, the store refuses it");
        }
    }
}

/// A batch of delivery outcomes was not written (the deliveries stay due and
/// may be sent again).
pub struct OutcomesNotSaved<'a> {
    pub error: &'a StoreError,
    pub attempts: usize,
    pub endpoint: Option<Uuid>,
}

impl OutcomesNotSaved<'_> {
    pub fn emit(self) {
        counter!(WEBHOOK_SAVE_ERRORS).increment(1);
        count_store_error(StoreOp::SaveOutcomes);
        let endpoint = self.endpoint.map(display);
        tracing::warn!(error = %self.error, attempts = self.attempts, endpoint, "delivery outcomes not written");
    }
}

/// The store could not be read, so a redirect was answered from a cached link
/// past its TTL. Logged at debug: during an outage this fires per redirect,
/// and the counters say it.
pub struct StaleLinkServed<'a> {
    pub code: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl StaleLinkServed<'_> {
    pub fn emit(self) {
        counter!(CACHE_STALE).increment(1);
        count_store_error(StoreOp::GetLink);
        tracing::debug!(code = self.code, error = %self.error, "store unreachable, answered from a stale cached link");
    }
}

/// The listener could not accept a connection (out of descriptors and the like).
pub struct AcceptFailed<'a> {
    pub error: &'a std::io::Error,
}

impl AcceptFailed<'_> {
    pub fn emit(self) {
        counter!(HTTP_ACCEPT_ERRORS).increment(1);
        tracing::warn!(error = %self.error, "accept failed");
    }
}

/// A connection closed on arrival: `server.max_connections` are open. Logged
/// at debug only: under a flood the count is the signal, not a line each.
pub struct ConnectionRefused {
    pub peer: std::net::SocketAddr,
}

impl ConnectionRefused {
    pub fn emit(self) {
        counter!(HTTP_CONNECTIONS_REFUSED).increment(1);
        tracing::debug!(peer = %self.peer, "connection refused: server.max_connections open");
    }
}

/// A click from a private or loopback peer (a proxy, likely) carried
/// `X-Forwarded-For`, but `server.trusted_proxies` is empty, so the proxy's
/// address is taken as the client's. Warned once; counted every time.
pub struct ForwardedForIgnored {
    pub peer: std::net::IpAddr,
}

impl ForwardedForIgnored {
    pub fn emit(self) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        counter!(CLICKS_FORWARDED_FOR_IGNORED).increment(1);
        WARNED.call_once(|| {
            tracing::warn!(
                peer = %self.peer,
                "click from a private peer carries X-Forwarded-For but server.trusted_proxies is empty: clicks count as the proxy's address"
            );
        });
    }
}

/// A kind of actor a [`crate::supervision::Supervisor`] keeps alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    ClickShard,
    Endpoint,
}

impl Supervised {
    pub fn as_str(self) -> &'static str {
        match self {
            Supervised::ClickShard => "click_shard",
            Supervised::Endpoint => "endpoint",
        }
    }

    fn restarts(self) -> &'static str {
        match self {
            Supervised::ClickShard => SHARD_RESTARTS,
            Supervised::Endpoint => WEBHOOK_RESTARTS,
        }
    }

    /// How many children of this kind are down, waiting for their restart window.
    pub fn failing_gauge(self) -> Gauge {
        match self {
            Supervised::ClickShard => gauge!(SHARDS_FAILING),
            Supervised::Endpoint => gauge!(WEBHOOK_FAILING),
        }
    }
}

/// A supervised child went down and is being started again.
pub struct ChildRestarted<'a> {
    pub kind: Supervised,
    pub child: &'a dyn std::fmt::Display,
    pub reason: &'a str,
}

impl ChildRestarted<'_> {
    pub fn emit(self) {
        counter!(self.kind.restarts()).increment(1);
        tracing::warn!(kind = self.kind.as_str(), child = %self.child, reason = self.reason, "child down, restarting");
    }
}

/// A supervised child could not be brought back (restart budget used up, start
/// or reload failed); it is retried after `retry_in`. The kind's failing gauge
/// is kept by the supervisor, which also sees the child come back.
pub struct ChildDown<'a> {
    pub kind: Supervised,
    pub child: &'a dyn std::fmt::Display,
    pub reason: &'a dyn std::fmt::Display,
    pub retry_in: std::time::Duration,
}

impl ChildDown<'_> {
    pub fn emit(self) {
        tracing::error!(kind = self.kind.as_str(), child = %self.child, reason = %self.reason, retry_in = ?self.retry_in, "child down, not restarted until its window frees");
    }
}

/// The fraud detector disabled a link.
pub struct LinkDisabledForFraud<'a> {
    pub code: &'a str,
    pub ip_range: &'a str,
    pub clicks: u32,
}

impl LinkDisabledForFraud<'_> {
    pub fn emit(self) {
        counter!(FRAUD_LINKS_DISABLED).increment(1);
        let Self {
            code,
            ip_range,
            clicks,
        } = self;
        tracing::warn!(code, ip_range, clicks, "fraud: link disabled");
    }
}

/// The fraud detector blocked one range on a link; the link stays enabled.
pub struct RangeBlockedForFraud<'a> {
    pub code: &'a str,
    pub ip_range: &'a str,
    pub clicks: u32,
    /// Unix seconds.
    pub until: u64,
}

impl RangeBlockedForFraud<'_> {
    pub fn emit(self) {
        counter!(FRAUD_RANGES_BLOCKED).increment(1);
        let Self {
            code,
            ip_range,
            clicks,
            until,
        } = self;
        tracing::warn!(
            code,
            ip_range,
            clicks,
            until,
            "fraud: range blocked on link"
        );
    }
}

/// A shard dropped clicks from ranges blocked on their link (they were
/// redirected; one event per batch, not per click).
pub struct BlockedClicksDropped {
    pub clicks: u64,
}

impl BlockedClicksDropped {
    pub fn emit(self) {
        counter!(FRAUD_CLICKS_BLOCKED).increment(self.clicks);
        tracing::debug!(clicks = self.clicks, "fraud: blocked clicks not recorded");
    }
}

/// An endpoint was disabled after too many failed deliveries in a row.
pub struct EndpointDisabled {
    pub endpoint: Uuid,
    pub failed: u32,
}

impl EndpointDisabled {
    pub fn emit(self) {
        counter!(WEBHOOK_ENDPOINTS_DISABLED).increment(1);
        tracing::warn!(endpoint = %self.endpoint, failed = self.failed, "endpoint disabled after failed deliveries");
    }
}

/// Deliveries stayed only in the outbox: their endpoint's mailbox was full or
/// its actor was down. Its actor reloads them when it has room.
pub struct DeliveriesSpilled {
    pub endpoint: Uuid,
    pub deliveries: usize,
}

impl DeliveriesSpilled {
    pub fn emit(self) {
        counter!(WEBHOOK_SPILLED).increment(self.deliveries as u64);
        tracing::debug!(endpoint = %self.endpoint, deliveries = self.deliveries, "deliveries left in the outbox");
    }
}

/// A link's `link.expired` event was fired (and its expiry recorded).
pub struct LinkExpired<'a> {
    pub code: &'a str,
}

impl LinkExpired<'_> {
    pub fn emit(self) {
        counter!(EXPIRIES_FIRED).increment(1);
        tracing::debug!(code = self.code, "link expired");
    }
}

/// Cluster table calls whose failures are counted: the `operation` label's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOp {
    Heartbeat,
    LiveNodes,
    Lease,
    AppendChange,
    ReadChanges,
    FraudCounts,
}

impl ClusterOp {
    pub const ALL: [ClusterOp; 6] = [
        ClusterOp::Heartbeat,
        ClusterOp::LiveNodes,
        ClusterOp::Lease,
        ClusterOp::AppendChange,
        ClusterOp::ReadChanges,
        ClusterOp::FraudCounts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClusterOp::Heartbeat => "heartbeat",
            ClusterOp::LiveNodes => "live_nodes",
            ClusterOp::Lease => "lease",
            ClusterOp::AppendChange => "append_change",
            ClusterOp::ReadChanges => "read_changes",
            ClusterOp::FraudCounts => "fraud_counts",
        }
    }
}

/// A cluster table call failed (or got no answer in time); the caller goes on
/// and tries again at its next tick.
pub struct ClusterCallFailed<'a> {
    pub operation: ClusterOp,
    pub error: &'a dyn std::fmt::Display,
}

impl ClusterCallFailed<'_> {
    pub fn emit(self) {
        counter!(CLUSTER_ERRORS, "operation" => self.operation.as_str()).increment(1);
        tracing::warn!(operation = self.operation.as_str(), error = %self.error, "cluster call failed");
    }
}

/// This node took a lease: at its start, or from a node that left, came back
/// or was too slow. (A lease row that expired takes its epoch with it, so the
/// epoch cannot tell a first owner from a successor.)
pub struct LeaseTaken<'a> {
    pub lease: &'a str,
    pub epoch: i64,
}

impl LeaseTaken<'_> {
    pub fn emit(self) {
        counter!(CLUSTER_HANDOVERS).increment(1);
        tracing::info!(lease = self.lease, epoch = self.epoch, "lease taken");
    }
}
