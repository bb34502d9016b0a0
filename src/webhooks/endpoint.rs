//! One actor per endpoint. It owns the endpoint's pending deliveries, its rate
//! limiter, its in-flight count and its retry timers. Network calls run in
//! spawned tasks that report back, so the mailbox never waits on a receiver;
//! attempt outcomes are written to the store in batches, one batch in flight.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    num::NonZeroU32,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rand::Rng;
use uuid::Uuid;

use super::{
    EndpointHandle, WebhookDirectory,
    client::{AttemptReport, WebhookClient},
    policy::{self, OutcomeKind},
    signer,
};
use crate::metrics::events::{EndpointDisabled, OutcomesNotSaved, StoreFailed, StoreOp};
use crate::{
    config::WebhooksConfig,
    domain::{Attempt, AttemptStatus, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint},
    metrics::WebhookMetrics,
    store::SharedStore,
};

/// Deliveries one endpoint keeps in memory; the rest wait in the outbox.
pub const MEMORY_CAP: usize = 8192;

pub enum EndpointMsg {
    /// New deliveries, already durable.
    Deliver(Vec<Delivery>),
    /// Look for work: due retries, rate-limit room, spilled deliveries.
    Pump,
    /// An attempt finished.
    Done(Box<Finished>),
    /// A batch of outcomes was written (or not).
    Saved { ok: bool, settled: Vec<Uuid> },
    /// Deliveries read back from the outbox.
    Loaded(Vec<Delivery>, usize),
    /// Deliver a failed event again now (API).
    Retry(Uuid, RpcReplyPort<Result<(), RetryError>>),
    /// The endpoint changed (API).
    Update(Box<Endpoint>),
    /// Panics inside the actor, so tests can watch the supervisor bring it back.
    #[doc(hidden)]
    Crash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("no delivery of that event to this endpoint")]
    NotFound,
    #[error("the delivery is still pending; only failed deliveries can be retried")]
    NotFailed,
    #[error("store error: {0}")]
    Store(String),
}

pub struct Finished {
    delivery: Delivery,
    report: AttemptReport,
    started_at: DateTime<Utc>,
}

/// What every endpoint actor shares.
pub struct EndpointContext {
    pub store: SharedStore,
    pub client: WebhookClient,
    pub config: WebhooksConfig,
    pub directory: Arc<WebhookDirectory>,
    pub metrics: WebhookMetrics,
}

pub struct EndpointArgs {
    pub handle: Arc<EndpointHandle>,
    pub endpoint: Endpoint,
    pub ctx: Arc<EndpointContext>,
}

pub struct EndpointState {
    handle: Arc<EndpointHandle>,
    endpoint: Endpoint,
    url: Option<Uri>,
    ctx: Arc<EndpointContext>,
    ready: VecDeque<Delivery>,
    waiting: BTreeMap<(DateTime<Utc>, Uuid), Delivery>,
    /// Every delivery this actor holds: ready, waiting, in flight, or whose
    /// outcome is not yet written (so a reload cannot bring it back twice).
    in_memory: HashSet<Uuid>,
    in_flight: usize,
    limiter: governor::DefaultDirectRateLimiter,
    timer: Option<Instant>,
    unsaved: Vec<(Attempt, DeliveryUpdate)>,
    saving: bool,
    loading: bool,
    /// Deliveries settled while a reload was reading the outbox: the reload may
    /// still have seen their rows, so they must not be taken in again.
    settled_during_load: HashSet<Uuid>,
    reported_pending: usize,
}

pub struct EndpointActor;

fn limiter(rate: u32) -> governor::DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(
        NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN),
    ))
}

impl Actor for EndpointActor {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = EndpointArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EndpointMsg>,
        args: EndpointArgs,
    ) -> Result<EndpointState, ActorProcessingErr> {
        args.handle.actor.set(Some(myself.clone()));
        args.handle.queued.store(0, Ordering::Release);
        // Whatever is pending lives in the outbox: start by reading it.
        args.handle.spilled.store(true, Ordering::Release);
        myself.cast(EndpointMsg::Pump)?;
        Ok(EndpointState {
            url: args.endpoint.url.parse().ok(),
            limiter: limiter(args.endpoint.rate_limit_per_sec),
            handle: args.handle,
            endpoint: args.endpoint,
            ctx: args.ctx,
            ready: VecDeque::new(),
            waiting: BTreeMap::new(),
            in_memory: HashSet::new(),
            in_flight: 0,
            timer: None,
            unsaved: Vec::new(),
            saving: false,
            loading: false,
            settled_during_load: HashSet::new(),
            reported_pending: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<EndpointMsg>,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        // Outcomes not yet written would only cause duplicate deliveries; write them.
        if !state.unsaved.is_empty() {
            let batch = std::mem::take(&mut state.unsaved);
            if let Err(e) = state.ctx.store.save_outcomes(&batch).await {
                OutcomesNotSaved {
                    error: &e,
                    attempts: batch.len(),
                    endpoint: Some(state.endpoint.id),
                }
                .emit();
            }
        }
        state
            .ctx
            .metrics
            .pending
            .decrement(state.reported_pending as f64);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<EndpointMsg>,
        msg: EndpointMsg,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EndpointMsg::Deliver(deliveries) => {
                state
                    .handle
                    .queued
                    .fetch_sub(deliveries.len(), Ordering::AcqRel);
                for d in deliveries {
                    state.hold(d);
                }
            }
            EndpointMsg::Pump => {
                if state.timer.is_some_and(|t| t <= Instant::now()) {
                    state.timer = None;
                }
            }
            EndpointMsg::Done(finished) => {
                state.in_flight -= 1;
                state.settle(*finished).await;
                state.save(&myself);
            }
            EndpointMsg::Saved { settled, .. } => {
                state.saving = false;
                for id in settled {
                    state.in_memory.remove(&id);
                    if state.loading {
                        state.settled_during_load.insert(id);
                    }
                }
                state.save(&myself);
            }
            EndpointMsg::Loaded(deliveries, limit) => {
                state.loading = false;
                if deliveries.len() >= limit {
                    state.handle.spilled.store(true, Ordering::Release);
                }
                let settled = std::mem::take(&mut state.settled_during_load);
                for d in deliveries {
                    if !state.in_memory.contains(&d.event_id) && !settled.contains(&d.event_id) {
                        state.hold(d);
                    }
                }
            }
            EndpointMsg::Retry(event_id, reply) => {
                let result = state.retry(event_id).await;
                let _ = reply.send(result);
            }
            EndpointMsg::Update(endpoint) => {
                if endpoint.rate_limit_per_sec != state.endpoint.rate_limit_per_sec {
                    state.limiter = limiter(endpoint.rate_limit_per_sec);
                }
                if endpoint.enabled && !state.endpoint.enabled {
                    state.handle.spilled.store(true, Ordering::Release);
                }
                state.url = endpoint.url.parse().ok();
                state.endpoint = *endpoint;
            }
            EndpointMsg::Crash => {
                panic!(
                    "endpoint {} was asked to panic (test hook)",
                    state.endpoint.id
                );
            }
        }
        state.pump(&myself);
        state.report_pending();
        Ok(())
    }
}

impl EndpointState {
    /// Takes a delivery into memory, unless memory is full (then it stays in the outbox).
    fn hold(&mut self, d: Delivery) {
        if self.in_memory.len() >= MEMORY_CAP {
            self.handle.spilled.store(true, Ordering::Release);
            return;
        }
        if !self.in_memory.insert(d.event_id) {
            return;
        }
        if d.next_attempt_at <= Utc::now() {
            self.ready.push_back(d);
        } else {
            self.waiting.insert((d.next_attempt_at, d.event_id), d);
        }
    }

    fn pump(&mut self, myself: &ActorRef<EndpointMsg>) {
        if !self.endpoint.enabled {
            return;
        }
        let now = Utc::now();
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push_back(entry.remove());
        }
        let max_in_flight = self.ctx.config.max_in_flight_per_endpoint as usize;
        while self.in_flight < max_in_flight && !self.ready.is_empty() {
            match self.limiter.check() {
                Ok(()) => {
                    if let Some(d) = self.ready.pop_front() {
                        self.start(myself, d);
                    }
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    self.arm(myself, wait);
                    break;
                }
            }
        }
        if let Some(((due, _), _)) = self.waiting.first_key_value() {
            let wait = (*due - now).to_std().unwrap_or(Duration::ZERO);
            self.arm(myself, wait);
        }
        if !self.loading
            && self.in_memory.len() < MEMORY_CAP / 2
            && self.handle.spilled.swap(false, Ordering::AcqRel)
        {
            self.loading = true;
            let limit = self.in_memory.len() + MEMORY_CAP / 2;
            let store = self.ctx.store.clone();
            let (endpoint, myself) = (self.endpoint.id, myself.clone());
            tokio::spawn(async move {
                let loaded = match store.due_deliveries(endpoint, limit).await {
                    Ok(ds) => ds,
                    Err(e) => {
                        StoreFailed::new(StoreOp::DueDeliveries, &e)
                            .endpoint(endpoint)
                            .emit();
                        // Nothing read: try again later.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = myself.cast(EndpointMsg::Loaded(Vec::new(), 0));
                        return;
                    }
                };
                let _ = myself.cast(EndpointMsg::Loaded(loaded, limit));
            });
        }
    }

    /// One timer at a time: re-armed only for an earlier wake-up.
    fn arm(&mut self, myself: &ActorRef<EndpointMsg>, wait: Duration) {
        let at = Instant::now() + wait;
        if self.timer.is_some_and(|t| t <= at) {
            return;
        }
        self.timer = Some(at);
        myself.send_after(wait, || EndpointMsg::Pump);
    }

    fn start(&mut self, myself: &ActorRef<EndpointMsg>, delivery: Delivery) {
        let Some(url) = self.url.clone() else {
            // Refused at creation; a stored one that no longer parses fails for good.
            let report = AttemptReport {
                kind: OutcomeKind::ConnectError,
                status: None,
                error: Some("endpoint url does not parse".into()),
                retry_after: None,
                body: None,
                duration: Duration::ZERO,
            };
            self.in_flight += 1;
            let _ = myself.cast(EndpointMsg::Done(Box::new(Finished {
                delivery,
                report,
                started_at: Utc::now(),
            })));
            return;
        };
        self.in_flight += 1;
        let now = Utc::now();
        let headers = self.headers(&delivery, now);
        let body = Bytes::from(delivery.body.clone());
        let client = self.ctx.client.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let report = client.send(&url, headers, body).await;
            let _ = myself.cast(EndpointMsg::Done(Box::new(Finished {
                delivery,
                report,
                started_at: now,
            })));
        });
    }

    fn headers(&self, delivery: &Delivery, now: DateTime<Utc>) -> HeaderMap {
        let secrets = self.endpoint.signing_secrets(now);
        let id = delivery.event_id.to_string();
        let timestamp = now.timestamp();
        let body = delivery.body.as_bytes();
        let mut headers = HeaderMap::with_capacity(10);
        let mut put = |name: &'static str, value: String| {
            // Our values are ASCII (hex, base64, digits, event type names).
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put("content-type", "application/json".into());
        put(
            "user-agent",
            concat!("relurl-webhooks/", env!("CARGO_PKG_VERSION")).into(),
        );
        put(
            "x-relurl-signature",
            signer::relurl_signature(&secrets, body),
        );
        put("x-relurl-event", delivery.event_type.clone());
        put("x-relurl-event-id", id.clone());
        put(
            "x-relurl-delivery-attempt",
            (delivery.attempts + 1).to_string(),
        );
        put("webhook-id", id.clone());
        put("webhook-timestamp", timestamp.to_string());
        put(
            "webhook-signature",
            signer::standard_signature(&secrets, &id, timestamp, body),
        );
        headers
    }

    /// Decides what a finished attempt means for its delivery and the endpoint.
    async fn settle(&mut self, finished: Finished) {
        let Finished {
            mut delivery,
            report,
            started_at,
        } = finished;
        let metrics = &self.ctx.metrics;
        metrics.outcome(report.kind).increment(1);
        metrics.latency.record(report.duration.as_secs_f64());
        delivery.attempts += 1;
        let first = *delivery.first_attempt_at.get_or_insert(started_at);
        let now = Utc::now();
        let (status, update, next) = if report.kind == OutcomeKind::Success {
            if self.endpoint.failed_streak > 0 {
                self.endpoint.failed_streak = 0;
                self.persist_endpoint().await;
            }
            let update = DeliveryUpdate::Delivered {
                endpoint_id: delivery.endpoint_id,
                event_id: delivery.event_id,
            };
            (AttemptStatus::Succeeded, update, None)
        } else {
            let config = &self.ctx.config;
            let jitter_unit = rand::rng().random_range(-1.0..=1.0);
            match policy::next_attempt_at(
                &config.retry_schedule,
                config.retry_jitter,
                jitter_unit,
                first,
                delivery.attempts,
                report.retry_after,
                now,
            ) {
                Some(at) => {
                    metrics.retries.increment(1);
                    delivery.next_attempt_at = at;
                    self.waiting
                        .insert((at, delivery.event_id), delivery.clone());
                    (
                        AttemptStatus::Pending,
                        DeliveryUpdate::Save(delivery.clone()),
                        Some(at),
                    )
                }
                None => {
                    metrics.dead.increment(1);
                    delivery.status = DeliveryStatus::Failed;
                    self.endpoint.failed_streak += 1;
                    if self.endpoint.failed_streak >= config.disable_after_failed_deliveries {
                        self.disable().await;
                    } else {
                        self.persist_endpoint().await;
                    }
                    (
                        AttemptStatus::Failed,
                        DeliveryUpdate::Save(delivery.clone()),
                        None,
                    )
                }
            }
        };
        if status != AttemptStatus::Succeeded {
            tracing::debug!(endpoint = %self.endpoint.id, event = %delivery.event_id, attempt = delivery.attempts, outcome = report.kind.as_str(), "delivery attempt failed");
        }
        let attempt = Attempt {
            id: Uuid::now_v7(),
            endpoint_id: delivery.endpoint_id,
            event_id: delivery.event_id,
            event_type: delivery.event_type.clone(),
            attempt: delivery.attempts,
            at: started_at,
            status,
            status_code: report.status,
            error: report.error,
            duration_ms: report.duration.as_millis() as u64,
            next_attempt_at: next,
            response_body: report.body.filter(|b| !b.is_empty()),
        };
        self.unsaved.push((attempt, update));
    }

    fn save(&mut self, myself: &ActorRef<EndpointMsg>) {
        if self.saving || self.unsaved.is_empty() {
            return;
        }
        self.saving = true;
        let batch = std::mem::take(&mut self.unsaved);
        let settled: Vec<Uuid> = batch
            .iter()
            .filter(|(a, _)| a.status != AttemptStatus::Pending)
            .map(|(a, _)| a.event_id)
            .collect();
        let store = self.ctx.store.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let ok = match store.save_outcomes(&batch).await {
                Ok(()) => true,
                Err(e) => {
                    OutcomesNotSaved {
                        error: &e,
                        attempts: batch.len(),
                        endpoint: None,
                    }
                    .emit();
                    false
                }
            };
            let _ = myself.cast(EndpointMsg::Saved { ok, settled });
        });
    }

    async fn retry(&mut self, event_id: Uuid) -> Result<(), RetryError> {
        let store = &self.ctx.store;
        let mut delivery = store
            .get_delivery(self.endpoint.id, event_id)
            .await
            .map_err(|e| RetryError::Store(e.to_string()))?
            .ok_or(RetryError::NotFound)?;
        if delivery.status != DeliveryStatus::Failed || self.in_memory.contains(&event_id) {
            return Err(RetryError::NotFailed);
        }
        delivery.status = DeliveryStatus::Pending;
        delivery.next_attempt_at = Utc::now();
        store
            .upsert_deliveries(std::slice::from_ref(&delivery))
            .await
            .map_err(|e| RetryError::Store(e.to_string()))?;
        self.hold(delivery);
        Ok(())
    }

    async fn disable(&mut self) {
        let n = self.endpoint.failed_streak;
        self.endpoint.enabled = false;
        self.endpoint.disabled_reason = Some(format!(
            "disabled automatically: the last {n} deliveries failed"
        ));
        self.endpoint.updated_at = Utc::now();
        EndpointDisabled {
            endpoint: self.endpoint.id,
            failed: n,
        }
        .emit();
        self.persist_endpoint().await;
        self.ctx.directory.upsert(&self.endpoint);
    }

    async fn persist_endpoint(&self) {
        if let Err(e) = self.ctx.store.update_endpoint(&self.endpoint).await {
            StoreFailed::new(StoreOp::UpdateEndpoint, &e)
                .endpoint(self.endpoint.id)
                .emit();
        }
    }

    fn report_pending(&mut self) {
        let now = self.in_memory.len();
        let gauge = &self.ctx.metrics.pending;
        if now > self.reported_pending {
            gauge.increment((now - self.reported_pending) as f64);
        } else {
            gauge.decrement((self.reported_pending - now) as f64);
        }
        self.reported_pending = now;
    }
}
