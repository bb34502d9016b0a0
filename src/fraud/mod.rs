//! The fraud detector: one actor counting persisted clicks per (link, IP range)
//! in a sliding window. Past `fraud.threshold` it disables the link (store, then
//! cache: redirects answer 410 at once), records an incident and publishes
//! `link.updated` with `reason: "fraud"`.
//!
//! - [`window`]: the counting rules, pure.
//!
//! In cluster mode the counts are shared through the database instead
//! ([`crate::cluster::fraud_sync`]), so the threshold holds over every node.
//!
//! Bounds, said out loud: observations wait in a preallocated queue of
//! [`OBSERVATION_QUEUE_LIMIT`]; the detector is woken once per burst. Past the
//! limit an observation is dropped and counted in
//! `relurl_fraud_observations_dropped_total` (the click itself is already
//! stored; only its fraud check is lost).

pub mod window;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use chrono::Utc;
use crossbeam_queue::ArrayQueue;
use metrics::Counter;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

use crate::metrics::{
    FraudMetrics,
    events::{LinkDisabledForFraud, StoreFailed, StoreOp},
};
use crate::{
    cluster::{feed::ChangeKind, fraud_sync::SharedCounts, runtime::ChangeLog},
    config::FraudConfig,
    domain::{Click, Incident},
    events::{Change, Event},
    link_cache::LinkCache,
    net,
    store::SharedStore,
    webhooks::Fanout,
};
use window::{FraudWindows, Observation, WindowKey};

/// Persisted clicks waiting for the detector; past this they are dropped.
pub const OBSERVATION_QUEUE_LIMIT: usize = 65_536;

pub enum FraudMsg {
    /// Observations are queued: take them all.
    Drain,
    /// The link was re-enabled: forget its windows.
    Forget(String),
    /// Cluster mode: write this node's counts and decide on the sums.
    Flush,
}

/// One persisted click as the detector sees it: code, address, unix seconds.
type Observed = (Arc<str>, IpAddr, i64);

/// The bounded hand-off from shards to the detector.
pub struct Inbox {
    queue: ArrayQueue<Observed>,
    /// A `Drain` is on its way; set by the first observation after a drain.
    scheduled: AtomicBool,
    dropped: Counter,
}

impl Inbox {
    fn new(capacity: usize, dropped: Counter) -> Self {
        Self {
            queue: ArrayQueue::new(capacity.max(1)),
            scheduled: AtomicBool::new(false),
            dropped,
        }
    }

    /// Queues what fits, counts the rest; `true` when the detector must be woken.
    fn push(&self, clicks: &[Click]) -> bool {
        for c in clicks {
            let observed = (Arc::from(c.code.as_str()), c.ip, c.at.timestamp());
            if self.queue.push(observed).is_err() {
                self.dropped.increment(1);
            }
        }
        !clicks.is_empty() && !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Everything queued. The flag drops first, so a click pushed while we
    /// take wakes the detector again.
    fn take(&self) -> Vec<Observed> {
        self.scheduled.store(false, Ordering::Release);
        std::iter::from_fn(|| self.queue.pop()).collect()
    }
}

/// How the rest of the system talks to the detector; sends never wait.
#[derive(Clone)]
pub struct FraudHandle {
    actor: ActorRef<FraudMsg>,
    inbox: Arc<Inbox>,
}

impl FraudHandle {
    pub fn observe(&self, clicks: &[Click]) {
        if self.inbox.push(clicks) {
            // A stopped detector (shutdown) has nothing left to protect.
            let _ = self.actor.cast(FraudMsg::Drain);
        }
    }

    pub fn forget(&self, code: &str) {
        let _ = self.actor.cast(FraudMsg::Forget(code.to_string()));
    }

    pub async fn stop_and_wait(&self) {
        let _ = self
            .actor
            .stop_and_wait(None, Some(std::time::Duration::from_secs(5)))
            .await;
    }
}

pub struct FraudArgs {
    pub config: FraudConfig,
    pub store: SharedStore,
    pub cache: Arc<LinkCache>,
    pub fanout: Fanout,
    pub public_base_url: String,
    /// Cluster mode: counts shared through the database instead of local windows.
    pub cluster: Option<SharedCounts>,
    pub changes: ChangeLog,
}

pub struct FraudState {
    args: FraudArgs,
    inbox: Arc<Inbox>,
    windows: FraudWindows,
    metrics: FraudMetrics,
}

pub struct FraudDetector;

impl FraudDetector {
    pub async fn start(args: FraudArgs) -> Result<FraudHandle, ractor::SpawnErr> {
        let dropped = FraudMetrics::new().dropped;
        let inbox = Arc::new(Inbox::new(OBSERVATION_QUEUE_LIMIT, dropped));
        let (actor, _) = Actor::spawn(None, FraudDetector, (args, inbox.clone())).await?;
        Ok(FraudHandle { actor, inbox })
    }
}

impl Actor for FraudDetector {
    type Msg = FraudMsg;
    type State = FraudState;
    type Arguments = (FraudArgs, Arc<Inbox>);

    async fn pre_start(
        &self,
        myself: ActorRef<FraudMsg>,
        (args, inbox): (FraudArgs, Arc<Inbox>),
    ) -> Result<FraudState, ActorProcessingErr> {
        if let Some(shared) = &args.cluster {
            myself.send_interval(shared.flush_every, || FraudMsg::Flush);
        }
        let windows = FraudWindows::new(
            args.config.window.as_secs(),
            args.config.threshold,
            args.config.max_tracked_keys,
        );
        Ok(FraudState {
            args,
            inbox,
            windows,
            metrics: FraudMetrics::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<FraudMsg>,
        msg: FraudMsg,
        state: &mut FraudState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FraudMsg::Drain => {
                let clicks = state.inbox.take();
                let (v4, v6) = (state.args.config.ipv4_prefix, state.args.config.ipv6_prefix);
                let mut tripped = Vec::new();
                let mut latest = 0;
                for (code, ip, at) in clicks {
                    let range = net::ip_range(ip, v4, v6);
                    let now = at.max(0) as u64;
                    latest = latest.max(now);
                    let key = WindowKey {
                        code: code.clone(),
                        range,
                    };
                    if let Some(shared) = &mut state.args.cluster {
                        shared.add(key, at);
                        continue;
                    }
                    match state.windows.observe(key, now) {
                        Observation::Tripped { clicks } => tripped.push((code, range, clicks)),
                        Observation::Untracked => state.metrics.untracked.increment(1),
                        Observation::Counted => {}
                    }
                }
                let swept = state.windows.sweep(latest);
                state.metrics.evicted.increment(swept as u64);
                state.metrics.tracked.set(state.windows.len() as f64);
                for (code, range, clicks) in tripped {
                    state.disable(&code, range.to_string(), clicks).await;
                }
            }
            FraudMsg::Flush => {
                let Some(shared) = &mut state.args.cluster else {
                    return Ok(());
                };
                let over = shared.flush(Utc::now().timestamp()).await;
                for (key, clicks) in over {
                    let clicks = u32::try_from(clicks).unwrap_or(u32::MAX);
                    state
                        .disable(&key.code, key.range.to_string(), clicks)
                        .await;
                }
            }
            FraudMsg::Forget(code) => {
                state.windows.forget_code(&code);
                if let Some(shared) = &mut state.args.cluster {
                    shared.forget(&code, Utc::now().timestamp());
                }
                state.metrics.tracked.set(state.windows.len() as f64);
            }
        }
        Ok(())
    }
}

impl FraudState {
    /// Disables the link unless something already did; idempotent.
    async fn disable(&mut self, code: &str, ip_range: String, clicks: u32) {
        let link = match self.args.store.get_link(code).await {
            Ok(Some(link)) => link,
            Ok(None) => return,
            Err(e) => {
                StoreFailed::new(StoreOp::GetLink, &e).code(code).emit();
                return;
            }
        };
        if link.disabled {
            return;
        }
        let mut updated = link.clone();
        updated.disabled = true;
        updated.disabled_reason = Some("fraud".into());
        updated.updated_at = Utc::now();
        let changes = [
            Change {
                field: "disabled",
                old: json!(false),
                new: json!(true),
            },
            Change {
                field: "disabled_reason",
                old: json!(link.disabled_reason),
                new: json!("fraud"),
            },
        ];
        let event = Event::link_updated(
            &updated,
            &self.args.public_base_url,
            &changes,
            Some("fraud"),
        );
        let deliveries = self.args.fanout.prepare(&event);
        if let Err(e) = self.args.store.update_link(&updated, &deliveries).await {
            StoreFailed::new(StoreOp::UpdateLink, &e).code(code).emit();
            return;
        }
        self.args.cache.put(&updated);
        self.args.changes.note(ChangeKind::LinkUpserted, code).await;
        LinkDisabledForFraud {
            code,
            ip_range: &ip_range,
            clicks,
        }
        .emit();
        let incident = Incident {
            id: Uuid::now_v7(),
            account_id: link.account_id,
            code: code.to_string(),
            ip_range,
            clicks,
            window_secs: self.args.config.window.as_secs(),
            at: updated.updated_at,
        };
        if let Err(e) = self.args.store.record_incident(&incident).await {
            StoreFailed::new(StoreOp::RecordIncident, &e)
                .code(code)
                .emit();
        }
        self.args.fanout.committed(event, deliveries);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn click(n: u8) -> Click {
        Click {
            id: Uuid::now_v7(),
            code: "abc".into(),
            at: Utc::now(),
            ip: IpAddr::from([203, 0, 113, n]),
            user_agent: String::new(),
            referrer: String::new(),
            referrer_host: None,
            location: Default::default(),
            device: String::new(),
            browser: String::new(),
            os: String::new(),
            is_bot: false,
        }
    }

    #[test]
    fn observations_past_the_limit_are_dropped_and_counted() {
        let dropped = Arc::new(AtomicU64::new(0));
        let inbox = Inbox::new(2, Counter::from_arc(dropped.clone()));
        let clicks: Vec<Click> = (1..=3).map(click).collect();

        assert!(inbox.push(&clicks), "the first push wakes the detector");
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert!(!inbox.push(&clicks[..1]), "one wake per burst");
        assert_eq!(dropped.load(Ordering::Relaxed), 2);

        let taken = inbox.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].1, clicks[0].ip);
        assert!(
            inbox.push(&clicks[..1]),
            "after a drain the next click wakes again"
        );
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }
}
