//! The shard actor and its supervisor. A shard drains its queue once per batch
//! window (`flush_interval` after the window's first click, or at once when
//! `flush_max_batch` clicks wait), enriches, writes one store batch of clicks and
//! counter increments, and only then passes the clicks on.
//!
//! A batch the store refuses is kept and retried with backoff; meanwhile the
//! queue fills and sheds detail (counts are kept), so memory stays bounded.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use metrics::{Counter, Histogram};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::oneshot;

use super::{ShardSlot, enrich};
use crate::{
    clicks::enrich::GeoIp,
    events::{Event, EventType},
    fraud::FraudHandle,
    net::Cidr,
    store::{ClickBatch, SharedStore},
    supervision::RestartBudget,
    webhooks::Fanout,
};

/// What every shard needs, shared.
pub struct ClickPipelineConfig {
    pub store: SharedStore,
    pub fanout: Fanout,
    pub fraud: Option<FraudHandle>,
    pub geo: GeoIp,
    pub trusted_proxies: Vec<Cidr>,
    pub flush_interval: Duration,
    pub flush_max_batch: usize,
}

pub enum ShardMsg {
    /// The first click of a batch window arrived.
    Wake,
    /// The window is over: write what is queued.
    Drain,
    /// Write everything now and answer (graceful shutdown).
    FlushAll(RpcReplyPort<()>),
}

struct ShardArgs {
    slot: Arc<ShardSlot>,
    config: Arc<ClickPipelineConfig>,
}

pub struct ShardState {
    slot: Arc<ShardSlot>,
    config: Arc<ClickPipelineConfig>,
    /// A batch the store refused, retried before anything new is taken.
    unwritten: Option<PendingBatch>,
    retry_delay: Duration,
    persisted: Counter,
    batch_size: Histogram,
    flush_latency: Histogram,
    flush_errors: Counter,
}

struct PendingBatch {
    batch: ClickBatch,
    /// The clicks' `link.clicked` events; their deliveries are in `batch`.
    events: Vec<Event>,
    acks: Vec<oneshot::Sender<()>>,
}

struct Shard;

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> Result<ShardState, ActorProcessingErr> {
        args.slot.actor.set(Some(myself.clone()));
        // Whatever queued while no actor was listening is drained now.
        args.slot.scheduled.store(true, Ordering::Release);
        myself.cast(ShardMsg::Drain)?;
        Ok(ShardState {
            slot: args.slot,
            config: args.config,
            unwritten: None,
            retry_delay: Duration::from_millis(50),
            persisted: metrics::counter!(crate::metrics::CLICKS_PERSISTED),
            batch_size: metrics::histogram!(crate::metrics::CLICKS_BATCH_SIZE),
            flush_latency: metrics::histogram!(crate::metrics::CLICKS_FLUSH_LATENCY),
            flush_errors: metrics::counter!(crate::metrics::CLICKS_FLUSH_ERRORS),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Wake => {
                if state.slot.queue.len() >= state.config.flush_max_batch {
                    state.drain().await;
                } else {
                    myself.send_after(state.config.flush_interval, || ShardMsg::Drain);
                }
            }
            ShardMsg::Drain => {
                if !state.drain().await {
                    let delay = state.retry_delay;
                    state.retry_delay = (delay * 2).min(Duration::from_secs(2));
                    myself.send_after(delay, || ShardMsg::Drain);
                }
            }
            ShardMsg::FlushAll(reply) => {
                // Shutdown: the store gets a few tries, then what is left is reported.
                for _ in 0..5 {
                    if state.drain().await {
                        break;
                    }
                    tokio::time::sleep(state.retry_delay).await;
                }
                if state.unwritten.is_some() || !state.slot.queue.is_empty() {
                    tracing::error!(
                        queued = state.slot.queue.len(),
                        "clicks could not be written before shutdown"
                    );
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl ShardState {
    /// Writes everything queued, batch by batch. `false`: the store refused one,
    /// which is kept for the next try.
    async fn drain(&mut self) -> bool {
        self.slot.scheduled.store(false, Ordering::Release);
        self.slot.urgent.store(false, Ordering::Release);
        loop {
            if self.unwritten.is_none() {
                self.unwritten = self.take_batch();
            }
            let Some(pending) = self.unwritten.take() else {
                self.slot.depth.set(0.0);
                return true;
            };
            let started = Instant::now();
            match self.config.store.record_clicks(&pending.batch).await {
                Ok(()) => {
                    self.flush_latency.record(started.elapsed().as_secs_f64());
                    self.retry_delay = Duration::from_millis(50);
                    self.deliver(pending);
                }
                // Retrying cannot help (a statement or record the store refuses):
                // the batch is dropped, logged and counted, and the ones behind it go on.
                Err(e) if !e.is_transient() => {
                    self.flush_errors.increment(1);
                    crate::metrics::store_error("record_clicks");
                    tracing::error!(error = %e, clicks = pending.batch.clicks.len(), "click batch dropped, the store refuses it");
                }
                Err(e) => {
                    self.flush_errors.increment(1);
                    crate::metrics::store_error("record_clicks");
                    tracing::warn!(error = %e, clicks = pending.batch.clicks.len(), "click batch not written, will retry");
                    self.unwritten = Some(pending);
                    self.slot.depth.set(self.slot.queue.len() as f64);
                    return false;
                }
            }
        }
    }

    /// Up to `flush_max_batch` queued clicks, enriched, plus the shed tallies.
    fn take_batch(&mut self) -> Option<PendingBatch> {
        let max = self.config.flush_max_batch;
        let mut clicks = Vec::with_capacity(self.slot.queue.len().min(max));
        let mut events = Vec::with_capacity(clicks.capacity());
        let mut acks = Vec::new();
        let mut deliveries = Vec::new();
        let mut counts: HashMap<Arc<str>, u64> = HashMap::new();
        while clicks.len() < max {
            let Some(queued) = self.slot.queue.pop() else {
                break;
            };
            let link = &queued.link;
            let click = enrich::enrich(
                &link.code,
                &queued.raw,
                &self.config.trusted_proxies,
                &self.config.geo,
            );
            *counts.entry(link.code.clone()).or_default() += 1;
            let wanted = self.config.fanout.prepare_if_wanted(
                link.account_id,
                EventType::LinkClicked,
                || Event::link_clicked(link.account_id, &link.summary, &click),
            );
            if let Some((event, owed)) = wanted {
                deliveries.extend(owed);
                events.push(event);
            }
            clicks.push(click);
            acks.extend(queued.ack);
        }
        if !clicks.is_empty() {
            self.slot.space.notify_waiters();
        }
        for entry in self.slot.shed.pin().iter() {
            let shed = entry.1.swap(0, Ordering::AcqRel);
            if shed > 0 {
                *counts.entry(entry.0.clone()).or_default() += shed;
            }
        }
        if clicks.is_empty() && counts.is_empty() {
            return None;
        }
        Some(PendingBatch {
            batch: ClickBatch {
                clicks,
                counts: counts
                    .into_iter()
                    .map(|(code, n)| (code.to_string(), n))
                    .collect(),
                deliveries,
            },
            events,
            acks,
        })
    }

    /// The batch is durable: acknowledge, count, check for fraud, publish.
    fn deliver(&mut self, pending: PendingBatch) {
        let n = pending.batch.clicks.len();
        self.batch_size.record(n as f64);
        self.persisted.increment(n as u64);
        for ack in pending.acks {
            let _ = ack.send(());
        }
        if let Some(fraud) = &self.config.fraud {
            fraud.observe(&pending.batch.clicks);
        }
        let fanout = &self.config.fanout;
        fanout.directory.dispatch(pending.batch.deliveries);
        for event in pending.events {
            fanout.bus.publish(event);
        }
        self.slot.depth.set(self.slot.queue.len() as f64);
    }
}

/// Keeps one shard actor per slot alive; at most `MAX_RESTARTS_PER_MINUTE`.
pub struct ClickSupervisor;

const MAX_RESTARTS_PER_MINUTE: usize = 10;

pub struct SupervisorArgs {
    pub slots: Vec<Arc<ShardSlot>>,
    pub config: Arc<ClickPipelineConfig>,
}

pub struct SupervisorState {
    slots: Vec<Arc<ShardSlot>>,
    config: Arc<ClickPipelineConfig>,
    children: HashMap<ractor::ActorId, usize>,
    restarts: RestartBudget,
    restart_counter: Counter,
    /// Set by the shutdown flush: shards that stop now are not restarted.
    stopping: bool,
}

pub enum SupervisorMsg {
    /// Flush every shard and answer when all are done.
    FlushAll(RpcReplyPort<()>),
}

impl ClickSupervisor {
    async fn spawn_shard(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let (child, _) = Actor::spawn_linked(
            None,
            Shard,
            ShardArgs {
                slot: state.slots[index].clone(),
                config: state.config.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        state.children.insert(child.get_id(), index);
        Ok(())
    }
}

impl Actor for ClickSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            slots: args.slots,
            config: args.config,
            children: HashMap::new(),
            restarts: RestartBudget::new(MAX_RESTARTS_PER_MINUTE),
            restart_counter: metrics::counter!(crate::metrics::SHARD_RESTARTS),
            stopping: false,
        };
        for index in 0..state.slots.len() {
            Self::spawn_shard(&myself, &mut state, index).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::FlushAll(reply) => {
                state.stopping = true;
                for slot in &state.slots {
                    if let Some(actor) = slot.actor.get() {
                        let _ = actor.call(ShardMsg::FlushAll, None).await;
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        let Some(index) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        if state.stopping {
            return Ok(());
        }
        state.slots[index].actor.set(None);
        if !state.restarts.try_restart(Instant::now()) {
            tracing::error!(shard = index, %reason, "click shard failed too often, not restarted; clicks are shed until restart");
            return Ok(());
        }
        state.restart_counter.increment(1);
        tracing::warn!(shard = index, %reason, "click shard failed, restarting");
        Self::spawn_shard(&myself, state, index).await
    }
}
