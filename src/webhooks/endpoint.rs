//! One actor per endpoint, thin: it owns the mailbox and the timer, feeds
//! [`DeliveryMachine`] what happened, and carries out what it decides.
//! Network calls and store reads and writes run in spawned tasks that report
//! back by message, so the mailbox never waits on a receiver or the store.

use std::sync::{Arc, atomic::Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::Uri;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rand::Rng;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use super::machine::{MEMORY_CAP, RetryError};
use super::{
    EndpointHandle, WebhookDirectory,
    client::{AttemptReport, WebhookClient},
    machine::{Action, DeliveryMachine, Finished, Input, Rules},
    policy::OutcomeKind,
    signer,
};
use crate::{
    cluster::{feed::ChangeKind, runtime::ChangeLog},
    config::WebhooksConfig,
    domain::{Attempt, AttemptStatus, Delivery, DeliveryUpdate, Endpoint},
    metrics::{
        WebhookMetrics,
        events::{EndpointDisabled, OutcomesNotSaved, StoreFailed, StoreOp},
    },
    store::{EndpointHealth, EndpointWrite, SharedStore},
};

type RetryReply = RpcReplyPort<Result<(), RetryError>>;

pub enum EndpointMsg {
    /// New deliveries, already durable.
    Deliver(Vec<Delivery>),
    /// Look for work: due retries, rate-limit room, spilled deliveries.
    Pump,
    /// Deliver a failed event again now (API).
    Retry(Uuid, RpcReplyPort<Result<(), RetryError>>),
    /// The endpoint changed (API).
    Update(Box<Endpoint>),
    /// What a spawned attempt, read or write reports back.
    Report(Input<RetryReply>),
    /// Panics inside the actor, so tests can watch the supervisor bring it back.
    #[doc(hidden)]
    Crash,
}

/// What every endpoint actor shares.
pub struct EndpointContext {
    pub store: SharedStore,
    pub client: WebhookClient,
    pub config: WebhooksConfig,
    pub directory: Arc<WebhookDirectory>,
    pub metrics: WebhookMetrics,
    /// Cluster mode: endpoint writes (auto-disable, failure streaks) reach the other nodes.
    pub changes: ChangeLog,
}

pub struct EndpointArgs {
    pub handle: Arc<EndpointHandle>,
    pub endpoint: Endpoint,
    pub ctx: Arc<EndpointContext>,
}

pub struct EndpointState {
    handle: Arc<EndpointHandle>,
    ctx: Arc<EndpointContext>,
    machine: DeliveryMachine<RetryReply>,
    /// The endpoint's URL, parsed once per change.
    url: Option<Uri>,
    /// Store writes under way, waited for at stop (at most one outcomes batch,
    /// one endpoint write and one per retry request).
    writes: Vec<JoinHandle<()>>,
    reported_pending: usize,
}

pub struct EndpointActor;

impl Actor for EndpointActor {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = EndpointArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EndpointMsg>,
        args: EndpointArgs,
    ) -> Result<EndpointState, ActorProcessingErr> {
        // Reset before senders can find the new actor, so no cast goes uncounted.
        args.handle.queued.store(0, Ordering::Release);
        // The machine starts by reading the outbox.
        args.handle.actor.occupy(&myself, EndpointMsg::Pump)?;
        Ok(EndpointState {
            url: args.endpoint.url.parse().ok(),
            machine: DeliveryMachine::new(args.endpoint, Rules::new(&args.ctx.config)),
            handle: args.handle,
            ctx: args.ctx,
            writes: Vec::new(),
            reported_pending: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<EndpointMsg>,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        // Outcomes not written would only cause duplicate deliveries: finish
        // the writes under way, then write what is left, here, since no
        // message can report back any more.
        for write in state.writes.drain(..) {
            let _ = write.await;
        }
        for action in state.machine.stop() {
            match action {
                Action::SaveOutcomes(batch) => {
                    save_outcomes(&state.ctx, state.machine.endpoint().id, &batch).await;
                }
                Action::SaveHealth { version, health } => {
                    let id = state.machine.endpoint().id;
                    save_health(&state.ctx, id, version, &health).await;
                }
                _ => {}
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
        let input = match msg {
            EndpointMsg::Deliver(deliveries) => {
                let handle = &state.handle;
                handle.queued.fetch_sub(deliveries.len(), Ordering::AcqRel);
                Input::Arrived(deliveries)
            }
            EndpointMsg::Pump => Input::Wake,
            EndpointMsg::Retry(event_id, reply) => Input::RetryAsked(event_id, reply),
            EndpointMsg::Update(endpoint) => {
                state.url = endpoint.url.parse().ok();
                Input::Updated(endpoint)
            }
            EndpointMsg::Report(input) => input,
            EndpointMsg::Crash => {
                panic!(
                    "endpoint {} was asked to panic (test hook)",
                    state.machine.endpoint().id
                );
            }
        };
        if state.handle.spilled.swap(false, Ordering::AcqRel) {
            state.machine.note_spilled();
        }
        let now = Utc::now();
        for action in state.machine.handle(input, now) {
            state.carry_out(action, &myself, now);
        }
        state.writes.retain(|w| !w.is_finished());
        state.report_pending();
        Ok(())
    }
}

impl EndpointState {
    fn carry_out(
        &mut self,
        action: Action<RetryReply>,
        myself: &ActorRef<EndpointMsg>,
        now: DateTime<Utc>,
    ) {
        let id = self.machine.endpoint().id;
        let ctx = self.ctx.clone();
        let reply = myself.clone();
        let report = move |input| {
            let _ = reply.cast(EndpointMsg::Report(input));
        };
        match action {
            Action::Send {
                delivery,
                attempt,
                secrets,
            } => self.send(myself, delivery, attempt, &secrets, now),
            Action::WakeAt(at) => {
                let wait = (at - now).to_std().unwrap_or_default();
                myself.send_after(wait, || EndpointMsg::Pump);
            }
            Action::Load { limit } => {
                tokio::spawn(async move {
                    let loaded = ctx.store.due_deliveries(id, limit).await;
                    let loaded = loaded.inspect_err(|e| {
                        StoreFailed::new(StoreOp::DueDeliveries, e)
                            .endpoint(id)
                            .emit();
                    });
                    report(Input::Loaded(loaded.ok()));
                });
            }
            Action::SaveOutcomes(batch) => self.writes.push(tokio::spawn(async move {
                save_outcomes(&ctx, id, &batch).await;
                report(Input::OutcomesSaved);
            })),
            Action::SaveHealth { version, health } => self.writes.push(tokio::spawn(async move {
                let written = save_health(&ctx, id, version, &health).await;
                report(Input::EndpointSaved(written));
            })),
            Action::Disabled { failed } => {
                EndpointDisabled {
                    endpoint: id,
                    failed,
                }
                .emit();
                self.ctx.directory.upsert(self.machine.endpoint());
            }
            Action::Settled {
                event_id,
                attempt,
                kind,
                status,
                duration,
            } => {
                let metrics = &self.ctx.metrics;
                metrics.outcomes.count(kind);
                metrics.latency.record(duration.as_secs_f64());
                match status {
                    AttemptStatus::Succeeded => return,
                    AttemptStatus::Pending => metrics.retries.increment(1),
                    AttemptStatus::Failed => metrics.dead.increment(1),
                }
                tracing::debug!(endpoint = %id, event = %event_id, attempt, outcome = kind.as_str(), "delivery attempt failed");
            }
            Action::ReadForRetry(event_id) => {
                tokio::spawn(async move {
                    let read = ctx.store.get_delivery(id, event_id).await;
                    report(Input::RetryRead(event_id, read.map_err(|e| e.to_string())));
                });
            }
            Action::WriteForRetry(delivery) => self.writes.push(tokio::spawn(async move {
                let event_id = delivery.event_id;
                let written = ctx
                    .store
                    .upsert_deliveries(std::slice::from_ref(&delivery))
                    .await;
                let written = written.map(|()| delivery).map_err(|e| e.to_string());
                report(Input::RetryWritten(event_id, written));
            })),
            Action::Answer(reply, answer) => {
                let _ = reply.send(answer);
            }
        }
    }

    fn send(
        &self,
        myself: &ActorRef<EndpointMsg>,
        delivery: Delivery,
        attempt: u32,
        secrets: &[String],
        now: DateTime<Utc>,
    ) {
        let attempt_id = Uuid::now_v7();
        let myself = myself.clone();
        let finish = move |delivery, report| {
            let jitter = rand::rng().random_range(-1.0..=1.0);
            let finished = Finished {
                delivery,
                report,
                attempt_id,
                started_at: now,
                jitter,
            };
            let _ = myself.cast(EndpointMsg::Report(Input::Finished(Box::new(finished))));
        };
        let Some(url) = self.url.clone() else {
            // Refused at creation; a stored one that no longer parses fails for good.
            let report = AttemptReport {
                kind: OutcomeKind::ConnectError,
                status: None,
                error: Some("endpoint url does not parse".into()),
                retry_after: None,
                body: None,
                duration: std::time::Duration::ZERO,
            };
            finish(delivery, report);
            return;
        };
        let headers = signer::headers(&delivery, attempt, secrets, now);
        let body = Bytes::from(delivery.body.clone());
        let client = self.ctx.client.clone();
        tokio::spawn(async move {
            let report = client.send(&url, headers, body).await;
            finish(delivery, report);
        });
    }

    fn report_pending(&mut self) {
        let now = self.machine.held();
        let gauge = &self.ctx.metrics.pending;
        if now > self.reported_pending {
            gauge.increment((now - self.reported_pending) as f64);
        } else {
            gauge.decrement((self.reported_pending - now) as f64);
        }
        self.reported_pending = now;
    }
}

/// Writes a batch of outcomes; a failure is counted and logged (the rows stay
/// pending, so the worst it costs is a repeated delivery).
async fn save_outcomes(ctx: &EndpointContext, endpoint: Uuid, batch: &[(Attempt, DeliveryUpdate)]) {
    if let Err(e) = ctx.store.save_outcomes(batch).await {
        OutcomesNotSaved {
            error: &e,
            attempts: batch.len(),
            endpoint: Some(endpoint),
        }
        .emit();
    }
}

/// Writes the actor's own fields; the version written, if it was. Not written
/// because the API changed the endpoint first: the API's version stands and
/// reaches the actor as an update.
async fn save_health(
    ctx: &EndpointContext,
    id: Uuid,
    version: u64,
    health: &EndpointHealth,
) -> Option<u64> {
    match ctx.store.save_endpoint_health(id, version, health).await {
        Ok(EndpointWrite::Written) => {
            // Only a disable changes what other nodes route; streak counts do not.
            if health.disabled.is_some() {
                ctx.changes.note(ChangeKind::EndpointUpserted, id).await;
            }
            Some(version + 1)
        }
        Ok(EndpointWrite::Stale | EndpointWrite::Gone) => {
            tracing::debug!(endpoint = %id, "endpoint changed meanwhile; its health write gave way");
            None
        }
        Err(e) => {
            StoreFailed::new(StoreOp::UpdateEndpoint, &e)
                .endpoint(id)
                .emit();
            None
        }
    }
}
