//! The shard actor and its supervisor. A shard drains its queue once per batch
//! window (`flush_interval` after the window's first click, or at once when
//! `flush_max_batch` clicks wait), enriches, writes one store batch of clicks and
//! counter increments, and only then passes the clicks on.
//!
//! Clicks from a range the fraud detector blocked on their link were redirected
//! and stop here: not stored, counted or forwarded, only counted in
//! `relurl_fraud_clicks_blocked_total`.
//!
//! A batch the store refuses is kept and retried with backoff; meanwhile the
//! queue fills and sheds detail (counts are kept), so memory stays bounded.
//!
//! A shard that is down (out of restart budget) leaves its queue in its slot:
//! clicks keep counting, `/readyz` says not ready, the shard is retried after
//! the restart window, and at shutdown the supervisor writes the queue itself.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use tokio::sync::oneshot;

use super::{
    ShardSlot, enrich,
    live::{LiveClick, LiveClicks},
    rollup::{Owner, ReferrerAdmission, rollups},
    window::flush_delay,
};
use crate::metrics::{
    ClickFlushMetrics,
    events::{BlockedClicksDropped, ClickFlushRefused, Supervised},
};
use crate::{
    clicks::enrich::GeoIp,
    events::{Event, EventType},
    fraud::FraudHandle,
    net::Cidr,
    store::{ClickBatch, SharedStore},
    supervision::{ChildKind, RestartPolicy, SupervisingActor, Supervisor, SupervisorActor},
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
    /// Open click streams, sent each durable batch.
    pub live: Arc<LiveClicks>,
}

pub enum ShardMsg {
    /// The first click of a batch window arrived.
    Wake,
    /// The window is over: write what is queued.
    Drain,
    /// Write everything now and answer (graceful shutdown).
    FlushAll(RpcReplyPort<()>),
    /// Panics inside the actor, so tests can watch the supervisor bring it back.
    #[doc(hidden)]
    Crash,
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
    metrics: ClickFlushMetrics,
    /// Referrer hosts each (scope, hour) counts by name (bounded).
    referrers: ReferrerAdmission,
    /// When the last drain started: the batch window runs from there.
    last_drain: Option<tokio::time::Instant>,
}

struct PendingBatch {
    batch: ClickBatch,
    /// The clicks' `link.clicked` events; their deliveries are in `batch`.
    events: Vec<Event>,
    /// Whose each click in `batch.clicks` is: for the rollups and the live streams.
    owners: Vec<Owner>,
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
        // Whatever queued while no actor was listening is drained now.
        args.slot.scheduled.store(true, Ordering::Release);
        args.slot.actor.occupy(&myself, ShardMsg::Drain)?;
        Ok(ShardState::new(args.slot, args.config))
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Wake => {
                let now = tokio::time::Instant::now();
                let queued = state.slot.queue.len();
                let (interval, max_batch) =
                    (state.config.flush_interval, state.config.flush_max_batch);
                match flush_delay(state.last_drain, now, queued, interval, max_batch) {
                    None => {
                        state.drain().await;
                    }
                    Some(wait) => {
                        myself.send_after(wait, || ShardMsg::Drain);
                    }
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
                state.flush_all().await;
                let _ = reply.send(());
            }
            ShardMsg::Crash => panic!("click shard asked to panic (test hook)"),
        }
        Ok(())
    }
}

impl ShardState {
    fn new(slot: Arc<ShardSlot>, config: Arc<ClickPipelineConfig>) -> Self {
        Self {
            slot,
            config,
            unwritten: None,
            retry_delay: Duration::from_millis(50),
            metrics: ClickFlushMetrics::new(),
            referrers: ReferrerAdmission::default(),
            last_drain: None,
        }
    }

    /// Shutdown: writes the queue and the shed tallies; the store gets a few
    /// tries, then what is left is reported.
    async fn flush_all(&mut self) {
        for _ in 0..5 {
            if self.drain().await {
                break;
            }
            tokio::time::sleep(self.retry_delay).await;
        }
        if self.unwritten.is_some() || !self.slot.queue.is_empty() {
            tracing::error!(
                queued = self.slot.queue.len(),
                "clicks could not be written before shutdown"
            );
        }
    }

    /// Writes everything queued, batch by batch. `false`: the store refused one,
    /// which is kept for the next try.
    async fn drain(&mut self) -> bool {
        self.last_drain = Some(tokio::time::Instant::now());
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
                    self.metrics
                        .flush_latency
                        .record(started.elapsed().as_secs_f64());
                    self.retry_delay = Duration::from_millis(50);
                    self.deliver(pending);
                }
                Err(e) => {
                    ClickFlushRefused {
                        error: &e,
                        clicks: pending.batch.clicks.len(),
                    }
                    .emit();
                    // Retrying cannot help (a statement or record the store
                    // refuses): drop it so the batches behind it go on.
                    if !e.is_transient() {
                        continue;
                    }
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
        let mut owners = Vec::with_capacity(clicks.capacity());
        let mut counts: HashMap<Arc<str>, u64> = HashMap::new();
        let mut blocked = 0;
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
            acks.extend(queued.ack);
            let now = click.at.timestamp().max(0) as u64;
            if let Some(fraud) = &self.config.fraud
                && fraud.blocks(&link.code, click.ip, now)
            {
                blocked += 1;
                continue;
            }
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
            owners.push(Owner {
                account: link.account_id,
                link_created_ms: link.created_ms,
            });
            clicks.push(click);
        }
        if !clicks.is_empty() || blocked > 0 {
            self.slot.space.notify_waiters();
        }
        if blocked > 0 {
            BlockedClicksDropped { clicks: blocked }.emit();
        }
        for entry in self.slot.shed.pin().iter() {
            let shed = entry.1.swap(0, Ordering::AcqRel);
            if shed > 0 {
                *counts.entry(entry.0.clone()).or_default() += shed;
            }
        }
        if clicks.is_empty() && counts.is_empty() {
            // Only blocked clicks: nothing to make durable before answering.
            for ack in acks {
                let _ = ack.send(());
            }
            return None;
        }
        // Shed clicks kept no detail: they count on the link, not in its rollups.
        let rollups = rollups(owners.iter().copied().zip(&clicks), &mut self.referrers);
        Some(PendingBatch {
            batch: ClickBatch {
                rollups,
                clicks,
                counts: counts
                    .into_iter()
                    .map(|(code, n)| (code.to_string(), n))
                    .collect(),
                deliveries,
            },
            events,
            owners,
            acks,
        })
    }

    /// The batch is durable: acknowledge, count, check for fraud, publish.
    fn deliver(&mut self, pending: PendingBatch) {
        let n = pending.batch.clicks.len();
        self.metrics.batch_size.record(n as f64);
        self.metrics.persisted.increment(n as u64);
        // Before the acks: a durable_ack redirect answers after its click is live.
        self.config.live.publish(|| {
            let clicks = pending.batch.clicks.iter().cloned();
            (pending.owners.iter().zip(clicks))
                .map(|(owner, click)| LiveClick {
                    account: owner.account,
                    click,
                })
                .collect()
        });
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

/// Restarts one shard may use in a minute.
pub const RESTART_POLICY: RestartPolicy = RestartPolicy::per_minute(10);

/// Click shards as a child kind: one per slot, started from the slot alone.
pub struct Shards {
    slots: Vec<Arc<ShardSlot>>,
    config: Arc<ClickPipelineConfig>,
}

impl ChildKind for Shards {
    const KIND: Supervised = Supervised::ClickShard;
    type Key = usize;
    type Spec = ();
    type Msg = SupervisorMsg;

    async fn reload(&self, _index: usize) -> Result<Option<()>, String> {
        Ok(Some(()))
    }

    async fn spawn(
        &self,
        supervisor: ActorCell,
        index: usize,
        (): (),
    ) -> Result<ActorId, SpawnErr> {
        let Some(slot) = self.slots.get(index) else {
            return Err(SpawnErr::StartupFailed(
                format!("no click shard {index}").into(),
            ));
        };
        let args = ShardArgs {
            slot: slot.clone(),
            config: self.config.clone(),
        };
        let (child, _) = Actor::spawn_linked(None, Shard, args, supervisor).await?;
        Ok(child.get_id())
    }

    fn vacate(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            slot.actor.set(None);
        }
    }
}

/// Keeps one shard actor per slot alive, under the shared supervision rules.
pub type ClickSupervisor = SupervisorActor<Shards>;

pub struct SupervisorArgs {
    pub slots: Vec<Arc<ShardSlot>>,
    pub config: Arc<ClickPipelineConfig>,
    pub restart: RestartPolicy,
}

pub enum SupervisorMsg {
    /// Flush every shard and answer when all are done.
    FlushAll(RpcReplyPort<()>),
    /// A down shard's restart window has freed (sent by the supervisor).
    Retry(usize),
}

impl SupervisingActor for Shards {
    type Args = SupervisorArgs;

    async fn boot(
        myself: &ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<Supervisor<Shards>, ActorProcessingErr> {
        let shards = args.slots.len();
        let kind = Shards {
            slots: args.slots,
            config: args.config,
        };
        let mut state = Supervisor::new(kind, args.restart, SupervisorMsg::Retry);
        for index in 0..shards {
            state.start(myself, index, ()).await;
        }
        Ok(state)
    }

    async fn handle(
        state: &mut Supervisor<Shards>,
        myself: &ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
    ) {
        match msg {
            SupervisorMsg::FlushAll(reply) => {
                state.stop_all();
                for slot in &state.kind.slots {
                    let flushed = match slot.actor.get() {
                        Some(actor) => actor
                            .call(ShardMsg::FlushAll, None)
                            .await
                            .is_ok_and(|answer| answer.is_success()),
                        None => false,
                    };
                    if !flushed {
                        // Its actor is down, but the queue and tallies outlive it: write them here.
                        ShardState::new(slot.clone(), state.kind.config.clone())
                            .flush_all()
                            .await;
                    }
                }
                let _ = reply.send(());
            }
            SupervisorMsg::Retry(index) => state.on_retry(myself, index).await,
        }
    }
}

/// Test hook: makes the shard's actor panic; returns the actor it crashed.
#[doc(hidden)]
pub fn crash_shard(slot: &ShardSlot) -> Option<ActorId> {
    let actor = slot.actor.get()?;
    actor.cast(ShardMsg::Crash).ok()?;
    Some(actor.get_id())
}
