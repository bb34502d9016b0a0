//! One endpoint's delivery state machine, pure: it takes what happened
//! (deliveries arrived, an attempt finished, the timer fired, a read or write
//! came back, the API asked for a retry or changed the endpoint) with the time
//! it happened, and answers with what to do. It owns the pending deliveries,
//! the rate limiter, the in-flight cap, retry scheduling, the memory bound with
//! its spill and reload, and auto-disable; the endpoint actor carries out its
//! actions and reports back.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{
    client::AttemptReport,
    policy::{self, OutcomeKind, RateLimiter},
};
use crate::{
    config::WebhooksConfig,
    domain::{Attempt, AttemptStatus, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint},
    store::EndpointHealth,
};

/// Deliveries one endpoint keeps in memory; the rest wait in the outbox.
pub const MEMORY_CAP: usize = 8192;

/// How long a failed outbox read waits before the next one.
const RELOAD_BACKOFF: TimeDelta = TimeDelta::seconds(1);

/// Why a retry request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("no delivery of that event to this endpoint")]
    NotFound,
    #[error("the delivery is still pending; only failed deliveries can be retried")]
    NotFailed,
    #[error("store error: {0}")]
    Store(String),
}

/// The rules a machine follows, from the `[webhooks]` configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub retry_schedule: Vec<Duration>,
    pub retry_jitter: f64,
    pub max_in_flight: usize,
    pub disable_after_failed_deliveries: u32,
    pub memory_cap: usize,
}

impl Rules {
    pub fn new(config: &WebhooksConfig) -> Self {
        Self {
            retry_schedule: config.retry_schedule.clone(),
            retry_jitter: config.retry_jitter,
            max_in_flight: config.max_in_flight_per_endpoint as usize,
            disable_after_failed_deliveries: config.disable_after_failed_deliveries,
            memory_cap: MEMORY_CAP,
        }
    }
}

/// An attempt that came back.
#[derive(Debug)]
pub struct Finished {
    pub delivery: Delivery,
    pub report: AttemptReport,
    pub attempt_id: Uuid,
    pub started_at: DateTime<Utc>,
    /// A uniform draw in [-1, 1] that scales the configured retry jitter.
    pub jitter: f64,
}

/// What happened. `R` answers a retry request (the actor's reply port).
#[derive(Debug)]
pub enum Input<R> {
    /// New deliveries, already durable.
    Arrived(Vec<Delivery>),
    /// The timer fired, or someone nudged: look for due work.
    Wake,
    Finished(Box<Finished>),
    /// The outcomes batch in flight was written, or given up on.
    OutcomesSaved,
    /// The endpoint write in flight finished: the version it wrote, or `None`
    /// (failed, or the API changed the endpoint first: its `Updated` follows).
    EndpointSaved(Option<u64>),
    /// The outbox read back; `None` when the read failed.
    Loaded(Option<Vec<Delivery>>),
    /// The API asks to deliver a failed event again.
    RetryAsked(Uuid, R),
    RetryRead(Uuid, Result<Option<Delivery>, String>),
    RetryWritten(Uuid, Result<Delivery, String>),
    /// The endpoint changed through the API (already stored).
    Updated(Box<Endpoint>),
}

/// What to do, in order.
#[derive(Debug)]
pub enum Action<R> {
    /// POST attempt `attempt` of the delivery, signed with each of `secrets`.
    Send {
        delivery: Delivery,
        attempt: u32,
        secrets: Vec<String>,
    },
    /// Wake the machine (`Input::Wake`) at this time.
    WakeAt(DateTime<Utc>),
    /// Read up to `limit` pending deliveries, soonest due first (`Input::Loaded`).
    Load { limit: usize },
    /// Write attempts and their rows in one batch (`Input::OutcomesSaved`).
    SaveOutcomes(Vec<(Attempt, DeliveryUpdate)>),
    /// Write the fields the machine owns, if the stored endpoint is still at
    /// `version` (`Input::EndpointSaved`).
    SaveHealth {
        version: u64,
        health: EndpointHealth,
    },
    /// The endpoint was just disabled after `failed` failed deliveries in a row.
    Disabled { failed: u32 },
    /// An attempt was settled (for metrics and logs).
    Settled {
        event_id: Uuid,
        attempt: u32,
        kind: OutcomeKind,
        status: AttemptStatus,
        duration: Duration,
    },
    /// Read the delivery for a retry (`Input::RetryRead`).
    ReadForRetry(Uuid),
    /// Write the delivery, pending again (`Input::RetryWritten`).
    WriteForRetry(Delivery),
    /// Answer a retry request.
    Answer(R, Result<(), RetryError>),
}

/// Deliveries that live only in the outbox, and reading them back.
#[derive(Debug, Default)]
struct Outbox {
    /// Some pending deliveries are not in memory.
    spilled: bool,
    /// The limit of the read under way.
    loading: Option<usize>,
    /// After a failed read, the next waits until then.
    not_before: Option<DateTime<Utc>>,
    /// Deliveries settled while a read was under way: it may still have seen
    /// their rows, so they must not be taken in again.
    settled_during_load: HashSet<Uuid>,
}

pub struct DeliveryMachine<R> {
    endpoint: Endpoint,
    rules: Rules,
    limiter: RateLimiter,
    /// Due now, in arrival order.
    ready: VecDeque<Delivery>,
    /// Due later, soonest first.
    waiting: BTreeMap<(DateTime<Utc>, Uuid), Delivery>,
    /// Every delivery held: ready, waiting, in flight, or whose outcome is not
    /// yet written (so a reload cannot bring it back twice).
    held: HashSet<Uuid>,
    in_flight: usize,
    /// The wake-up asked for; only an earlier one is asked again.
    timer: Option<DateTime<Utc>>,
    unsaved: Vec<(Attempt, DeliveryUpdate)>,
    /// The settled deliveries of the outcomes batch being written.
    saving: Option<Vec<Uuid>>,
    endpoint_dirty: bool,
    endpoint_saving: bool,
    outbox: Outbox,
    /// Retry requests under way. Each is an API call waiting for its answer,
    /// so the server's connection limits bound them.
    retrying: HashMap<Uuid, R>,
}

impl<R> DeliveryMachine<R> {
    /// A machine for a starting actor: whatever is pending is in the outbox.
    pub fn new(endpoint: Endpoint, rules: Rules) -> Self {
        Self {
            limiter: RateLimiter::new(endpoint.rate_limit_per_sec),
            endpoint,
            rules,
            ready: VecDeque::new(),
            waiting: BTreeMap::new(),
            held: HashSet::new(),
            in_flight: 0,
            timer: None,
            unsaved: Vec::new(),
            saving: None,
            endpoint_dirty: false,
            endpoint_saving: false,
            outbox: Outbox {
                spilled: true,
                ..Outbox::default()
            },
            retrying: HashMap::new(),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Deliveries held in memory.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Deliveries were left in the outbox (mailbox full, actor away): read
    /// them back when there is room.
    pub fn note_spilled(&mut self) {
        self.outbox.spilled = true;
    }

    pub fn handle(&mut self, input: Input<R>, now: DateTime<Utc>) -> Vec<Action<R>> {
        let mut out = Vec::new();
        match input {
            Input::Arrived(deliveries) => {
                for d in deliveries {
                    self.hold(d, now);
                }
            }
            Input::Wake => self.timer = self.timer.filter(|t| *t > now),
            Input::Finished(finished) => self.settle(*finished, now, &mut out),
            Input::OutcomesSaved => {
                for id in self.saving.take().unwrap_or_default() {
                    self.held.remove(&id);
                    if self.outbox.loading.is_some() {
                        self.outbox.settled_during_load.insert(id);
                    }
                }
            }
            Input::EndpointSaved(written) => {
                self.endpoint_saving = false;
                if let Some(version) = written {
                    self.endpoint.version = self.endpoint.version.max(version);
                }
            }
            Input::Loaded(loaded) => self.loaded(loaded, now, &mut out),
            Input::RetryAsked(event_id, reply) => self.retry_asked(event_id, reply, &mut out),
            Input::RetryRead(event_id, read) => self.retry_read(event_id, read, now, &mut out),
            Input::RetryWritten(event_id, written) => {
                self.retry_written(event_id, written, now, &mut out)
            }
            // Older than what this machine wrote itself: already superseded.
            Input::Updated(endpoint) if endpoint.version < self.endpoint.version => {}
            Input::Updated(endpoint) => {
                if endpoint.rate_limit_per_sec != self.endpoint.rate_limit_per_sec {
                    self.limiter = RateLimiter::new(endpoint.rate_limit_per_sec);
                }
                if endpoint.enabled && !self.endpoint.enabled {
                    self.outbox.spilled = true;
                }
                self.endpoint = *endpoint;
                // The API stored this version; ours is no longer worth writing.
                self.endpoint_dirty = false;
            }
        }
        self.pump(now, &mut out);
        out
    }

    /// The writes still owed when the actor stops, whatever is in flight.
    pub fn stop(&mut self) -> Vec<Action<R>> {
        let mut out = Vec::new();
        if !self.unsaved.is_empty() {
            out.push(Action::SaveOutcomes(std::mem::take(&mut self.unsaved)));
        }
        if std::mem::take(&mut self.endpoint_dirty) {
            out.push(self.save_health());
        }
        out
    }

    /// Takes a delivery into memory, unless memory is full (then it stays in the outbox).
    pub(super) fn hold(&mut self, d: Delivery, now: DateTime<Utc>) {
        if self.held.len() >= self.rules.memory_cap {
            self.outbox.spilled = true;
            return;
        }
        if !self.held.insert(d.event_id) {
            return;
        }
        if d.next_attempt_at <= now {
            self.ready.push_back(d);
        } else {
            self.waiting.insert((d.next_attempt_at, d.event_id), d);
        }
    }

    fn pump(&mut self, now: DateTime<Utc>, out: &mut Vec<Action<R>>) {
        if self.endpoint.enabled {
            self.send_due(now, out);
            self.reload(now, out);
        }
        if self.saving.is_none() && !self.unsaved.is_empty() {
            let batch = std::mem::take(&mut self.unsaved);
            let settled = batch
                .iter()
                .filter(|(a, _)| a.status != AttemptStatus::Pending)
                .map(|(a, _)| a.event_id)
                .collect();
            self.saving = Some(settled);
            out.push(Action::SaveOutcomes(batch));
        }
        if self.endpoint_dirty && !self.endpoint_saving {
            self.endpoint_dirty = false;
            self.endpoint_saving = true;
            out.push(self.save_health());
        }
    }

    fn save_health(&self) -> Action<R> {
        let e = &self.endpoint;
        let health = EndpointHealth {
            failed_streak: e.failed_streak,
            disabled: (!e.enabled)
                .then(|| (e.disabled_reason.clone().unwrap_or_default(), e.updated_at)),
        };
        Action::SaveHealth {
            version: e.version,
            health,
        }
    }

    fn send_due(&mut self, now: DateTime<Utc>, out: &mut Vec<Action<R>>) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push_back(entry.remove());
        }
        while self.in_flight < self.rules.max_in_flight && !self.ready.is_empty() {
            if let Err(free_at) = self.limiter.take(now) {
                self.wake(free_at, out);
                break;
            }
            let Some(delivery) = self.ready.pop_front() else {
                break;
            };
            self.in_flight += 1;
            let secrets = self.endpoint.signing_secrets(now);
            out.push(Action::Send {
                attempt: delivery.attempts + 1,
                secrets: secrets.into_iter().map(str::to_owned).collect(),
                delivery,
            });
        }
        if let Some(&(due, _)) = self.waiting.keys().next() {
            self.wake(due, out);
        }
    }

    fn reload(&mut self, now: DateTime<Utc>, out: &mut Vec<Action<R>>) {
        let room = self.rules.memory_cap / 2;
        let outbox = &mut self.outbox;
        if outbox.loading.is_some()
            || !outbox.spilled
            || outbox.not_before.is_some_and(|t| t > now)
            || self.held.len() >= room
        {
            return;
        }
        // The read starts with the soonest due, which may be held already.
        let limit = self.held.len() + room;
        outbox.spilled = false;
        outbox.loading = Some(limit);
        outbox.not_before = None;
        out.push(Action::Load { limit });
    }

    fn loaded(
        &mut self,
        loaded: Option<Vec<Delivery>>,
        now: DateTime<Utc>,
        out: &mut Vec<Action<R>>,
    ) {
        let limit = self.outbox.loading.take().unwrap_or(0);
        let settled = std::mem::take(&mut self.outbox.settled_during_load);
        let Some(deliveries) = loaded else {
            self.outbox.spilled = true;
            let at = now + RELOAD_BACKOFF;
            self.outbox.not_before = Some(at);
            self.wake(at, out);
            return;
        };
        // A full read may have left more behind.
        if deliveries.len() >= limit {
            self.outbox.spilled = true;
        }
        for d in deliveries {
            if !self.held.contains(&d.event_id) && !settled.contains(&d.event_id) {
                self.hold(d, now);
            }
        }
    }

    /// One timer at a time: asked again only for an earlier wake-up.
    fn wake(&mut self, at: DateTime<Utc>, out: &mut Vec<Action<R>>) {
        if self.timer.is_some_and(|t| t <= at) {
            return;
        }
        self.timer = Some(at);
        out.push(Action::WakeAt(at));
    }

    /// Decides what a finished attempt means for its delivery and the endpoint.
    fn settle(&mut self, finished: Finished, now: DateTime<Utc>, out: &mut Vec<Action<R>>) {
        let Finished {
            mut delivery,
            report,
            attempt_id,
            started_at,
            jitter,
        } = finished;
        self.in_flight = self.in_flight.saturating_sub(1);
        delivery.attempts += 1;
        let first = *delivery.first_attempt_at.get_or_insert(started_at);
        let (status, update, next) = if report.kind == OutcomeKind::Success {
            if self.endpoint.failed_streak > 0 {
                self.endpoint.failed_streak = 0;
                self.endpoint_dirty = true;
            }
            let update = DeliveryUpdate::Delivered {
                endpoint_id: delivery.endpoint_id,
                event_id: delivery.event_id,
            };
            (AttemptStatus::Succeeded, update, None)
        } else {
            let rules = &self.rules;
            let next = policy::next_attempt_at(
                &rules.retry_schedule,
                rules.retry_jitter,
                jitter,
                first,
                delivery.attempts,
                report.retry_after,
                now,
            );
            match next {
                Some(at) => {
                    delivery.next_attempt_at = at;
                    self.waiting
                        .insert((at, delivery.event_id), delivery.clone());
                    (
                        AttemptStatus::Pending,
                        DeliveryUpdate::Save(delivery.clone()),
                        next,
                    )
                }
                None => {
                    delivery.status = DeliveryStatus::Failed;
                    self.failed_for_good(now, out);
                    (
                        AttemptStatus::Failed,
                        DeliveryUpdate::Save(delivery.clone()),
                        None,
                    )
                }
            }
        };
        out.push(Action::Settled {
            event_id: delivery.event_id,
            attempt: delivery.attempts,
            kind: report.kind,
            status,
            duration: report.duration,
        });
        let attempt = Attempt {
            id: attempt_id,
            endpoint_id: delivery.endpoint_id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
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

    /// A delivery failed for good: past the configured streak, the endpoint stops.
    fn failed_for_good(&mut self, now: DateTime<Utc>, out: &mut Vec<Action<R>>) {
        let endpoint = &mut self.endpoint;
        endpoint.failed_streak += 1;
        self.endpoint_dirty = true;
        let n = endpoint.failed_streak;
        if endpoint.enabled && n >= self.rules.disable_after_failed_deliveries {
            endpoint.enabled = false;
            endpoint.disabled_reason = Some(format!(
                "disabled automatically: the last {n} deliveries failed"
            ));
            endpoint.updated_at = now;
            out.push(Action::Disabled { failed: n });
        }
    }
}

mod retry;
#[cfg(test)]
mod tests;
