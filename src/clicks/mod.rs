//! The click pipeline: the redirect handler drops a raw click into its shard's
//! bounded queue and answers; shard actors enrich, batch and persist clicks, then
//! hand them to the fraud detector and publish `link.clicked`.
//!
//! - [`enrich`]: pure user-agent, address and referrer parsing.
//! - [`shard`]: the shard actor (drain, batch, flush) and its supervisor;
//!   `window` decides when it writes.
//! - [`rollup`]: the hourly counts each batch adds to the stats.
//! - [`live`]: durable clicks to the open click streams.
//!
//! Bounds, said out loud: each shard's queue holds `redirect.shard_queue_limit`
//! clicks, allocated as it fills. Past that a click's detail is shed (counted in
//! `relurl_clicks_shed_total`) but the click still counts towards the link's
//! `click_count`: shed clicks add to a per-code tally the shard writes with its
//! next batch. With `durable_ack` nothing is shed: the redirect waits for room.

pub mod enrich;
pub mod live;
pub mod rollup;
pub mod shard;
mod window;

use std::{
    hash::{BuildHasher, Hasher},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::bounded_queue::BoundedQueue;
use metrics::{Counter, Gauge};
use tokio::sync::{Notify, oneshot};

use crate::{link_cache::CachedLink, metrics::ClickQueueMetrics, supervision::ActorSlot};
pub use enrich::RawClick;
pub use shard::{ClickPipelineConfig, ShardMsg};

/// A click waiting in a shard's queue.
pub struct Queued {
    pub link: Arc<CachedLink>,
    pub raw: RawClick,
    /// Answered once the click's batch is durable (`durable_ack` only).
    pub ack: Option<oneshot::Sender<()>>,
}

/// State of one shard that outlives its actor: a restarted actor finds its queue intact.
pub struct ShardSlot {
    pub(crate) queue: BoundedQueue<Queued>,
    /// Clicks whose detail was shed, per code, not yet written to the counter.
    pub(crate) shed: papaya::HashMap<Arc<str>, AtomicU64>,
    /// A drain is scheduled; set by the first click of a batch window.
    pub(crate) scheduled: AtomicBool,
    /// A full batch is waiting and the shard was told to write it now.
    pub(crate) urgent: AtomicBool,
    pub(crate) actor: ActorSlot<ShardMsg>,
    /// Signalled after every drain, for redirects waiting for room.
    pub(crate) space: Notify,
    pub(crate) depth: Gauge,
    received: Counter,
    shed_total: Counter,
}

impl ShardSlot {
    fn new(index: usize, capacity: usize) -> Self {
        let ClickQueueMetrics {
            depth,
            received,
            shed,
        } = ClickQueueMetrics::new(index);
        Self {
            queue: BoundedQueue::new(capacity),
            shed: papaya::HashMap::new(),
            scheduled: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            actor: ActorSlot::empty(),
            space: Notify::new(),
            depth,
            received,
            shed_total: shed,
        }
    }

    /// The shard's running actor; `None` while it is down.
    pub fn actor_id(&self) -> Option<ractor::ActorId> {
        self.actor.live_id()
    }

    /// Asks the shard actor to drain: once per batch window, and once more
    /// when a full batch is waiting or a redirect waits for its click to be
    /// durable (`now`: group commit, the clicks queued meanwhile go next).
    fn wake(&self, flush_max_batch: usize, now: bool) {
        let full = now || self.queue.len() >= flush_max_batch;
        let first = !self.scheduled.swap(true, Ordering::AcqRel);
        let urgent = full && !self.urgent.swap(true, Ordering::AcqRel);
        if !first && !urgent {
            return;
        }
        let msg = if urgent {
            ShardMsg::Drain
        } else {
            ShardMsg::Wake
        };
        // No actor (restarting): its successor drains on start.
        if let Some(actor) = self.actor.get() {
            let _ = actor.cast(msg);
        }
    }
}

/// The handler's side of the pipeline: pick a shard, enqueue, never wait
/// (unless `durable_ack` asks to).
pub struct ClickRouter {
    slots: Vec<Arc<ShardSlot>>,
    hasher: std::hash::RandomState,
    flush_max_batch: usize,
    durable_ack: bool,
}

impl ClickRouter {
    pub fn new(
        shards: usize,
        queue_limit: usize,
        flush_max_batch: usize,
        durable_ack: bool,
    ) -> Self {
        Self {
            slots: (0..shards.max(1))
                .map(|i| Arc::new(ShardSlot::new(i, queue_limit)))
                .collect(),
            hasher: std::hash::RandomState::new(),
            flush_max_batch,
            durable_ack,
        }
    }

    pub fn slots(&self) -> &[Arc<ShardSlot>] {
        &self.slots
    }

    /// Shards whose actor is down (restarting, or waiting out its restart window).
    pub fn shards_down(&self) -> Vec<usize> {
        let slots = self.slots.iter().enumerate();
        slots
            .filter(|(_, slot)| slot.actor_id().is_none())
            .map(|(index, _)| index)
            .collect()
    }

    fn slot_for(&self, code: &str) -> &ShardSlot {
        let mut h = self.hasher.build_hasher();
        h.write(code.as_bytes());
        &self.slots[(h.finish() % self.slots.len() as u64) as usize]
    }

    /// Hands a click to its shard. Without `durable_ack` this never waits; with
    /// it, the returned future resolves when the click's batch is durable.
    pub async fn record(&self, link: Arc<CachedLink>, raw: RawClick) {
        let slot = self.slot_for(&link.code);
        slot.received.increment(1);
        if !self.durable_ack {
            if let Err(rejected) = slot.queue.push(Queued {
                link,
                raw,
                ack: None,
            }) {
                let code = rejected.link.code.clone();
                slot.shed
                    .pin()
                    .get_or_insert_with(code, || AtomicU64::new(0))
                    .fetch_add(1, Ordering::Relaxed);
                slot.shed_total.increment(1);
            }
            slot.wake(self.flush_max_batch, false);
            return;
        }

        let (tx, rx) = oneshot::channel();
        let mut item = Queued {
            link,
            raw,
            ack: Some(tx),
        };
        loop {
            let room = slot.space.notified();
            match slot.queue.push(item) {
                Ok(()) => break,
                Err(back) => {
                    item = back;
                    slot.wake(self.flush_max_batch, true);
                    room.await;
                }
            }
        }
        slot.wake(self.flush_max_batch, true);
        // A dropped sender means the shard gave up (shutdown): answer anyway.
        let _ = rx.await;
    }
}
