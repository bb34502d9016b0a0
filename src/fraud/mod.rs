//! The fraud detector: one actor counting persisted clicks per (link, IP range)
//! in a sliding window. Past `fraud.threshold` it acts as the link's policy
//! says (`fraud_policy`, else `fraud.policy`) and records an incident naming
//! the action:
//! - `block_range`: that range's clicks on that link are still redirected but
//!   no longer stored, counted or forwarded for `fraud.block_for` (the shards
//!   ask [`FraudHandle::blocks`]); the link stays up for everyone else, so a
//!   flood from one range cannot take a victim's link down;
//! - `disable_link`: the link is disabled (store, then cache: redirects answer
//!   410 at once) and `link.updated` goes out with `reason: "fraud"`, except
//!   within `fraud.grace_after_enable` of a re-enable, when the range is
//!   blocked instead.
//!
//! - [`window`]: the counting rules, pure.
//! - [`policy`]: the decision, deadlines and the shared blocklist, pure.
//!
//! In cluster mode the counts are shared through the database instead
//! ([`crate::cluster::fraud_sync`]), so the threshold holds over every node:
//! every node that sees a range over blocks it, and the block is written
//! beside the counts, so nodes that see the range only later block it too.
//! One node records the incident (and disables the link); a re-enable's grace
//! period is written there too, so whichever node records honours it.
//!
//! Bounds, said out loud: observations wait in a preallocated queue of
//! [`OBSERVATION_QUEUE_LIMIT`]; the detector is woken once per burst. Past the
//! limit an observation is dropped and counted in
//! `relurl_fraud_observations_dropped_total` (the click itself is already
//! stored; only its fraud check is lost).

pub mod policy;
pub mod window;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::bounded_queue::BoundedQueue;
use chrono::Utc;
use metrics::Counter;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

use crate::metrics::{
    FraudMetrics,
    events::{LinkDisabledForFraud, RangeBlockedForFraud, StoreFailed, StoreOp},
};
use crate::{
    cluster::{feed::ChangeKind, fraud_sync::SharedCounts, runtime::ChangeLog},
    config::FraudConfig,
    domain::{Click, FraudAction, Incident, Link},
    events::{Change, Event},
    link_cache::LinkCache,
    net,
    store::SharedStore,
    webhooks::Fanout,
};
use policy::{Blocklist, Deadlines};
use window::{FraudWindows, Observation, WindowKey};

/// Persisted clicks waiting for the detector; past this they are dropped.
pub const OBSERVATION_QUEUE_LIMIT: usize = 65_536;
/// Links in their grace period after a re-enable, at most (the oldest go first).
const GRACE_LIMIT: usize = 100_000;

pub enum FraudMsg {
    /// Observations are queued: take them all.
    Drain,
    /// The link changed (another node's change, in a cluster): forget its windows.
    Forget(String),
    /// The link was re-enabled here: forget its windows, start its grace
    /// period (shared with every node in a cluster).
    Reenabled(String),
    /// Cluster mode: write this node's counts and decide on the sums.
    Flush,
}

/// One persisted click as the detector sees it: code, address, unix seconds.
type Observed = (Arc<str>, IpAddr, i64);

/// The bounded hand-off from shards to the detector.
pub struct Inbox {
    queue: BoundedQueue<Observed>,
    /// A `Drain` is on its way; set by the first observation after a drain.
    scheduled: AtomicBool,
    dropped: Counter,
}

impl Inbox {
    fn new(capacity: usize, dropped: Counter) -> Self {
        Self {
            queue: BoundedQueue::new(capacity.max(1)),
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
    blocklist: Arc<Blocklist>,
}

impl FraudHandle {
    /// Whether a click on `code` from `ip` at `now_secs` comes from a range
    /// blocked on that link: such a click is redirected, nothing more.
    pub fn blocks(&self, code: &Arc<str>, ip: IpAddr, now_secs: u64) -> bool {
        self.blocklist.blocks(code, ip, now_secs)
    }

    pub fn observe(&self, clicks: &[Click]) {
        if self.inbox.push(clicks) {
            // A stopped detector (shutdown) has nothing left to protect.
            let _ = self.actor.cast(FraudMsg::Drain);
        }
    }

    pub fn forget(&self, code: &str) {
        let _ = self.actor.cast(FraudMsg::Forget(code.to_string()));
    }

    pub fn reenabled(&self, code: &str) {
        let _ = self.actor.cast(FraudMsg::Reenabled(code.to_string()));
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
    /// Blocked (link, range) pairs; mirrored into `blocklist` for the shards.
    blocks: Deadlines<WindowKey>,
    blocklist: Arc<Blocklist>,
    /// Links re-enabled lately: not disabled again until their deadline.
    graces: Deadlines<Arc<str>>,
    metrics: FraudMetrics,
}

pub struct FraudDetector;

type Parts = (FraudArgs, Arc<Inbox>, Arc<Blocklist>);

impl FraudDetector {
    pub async fn start(args: FraudArgs) -> Result<FraudHandle, ractor::SpawnErr> {
        let dropped = FraudMetrics::new().dropped;
        let inbox = Arc::new(Inbox::new(OBSERVATION_QUEUE_LIMIT, dropped));
        let blocklist = Arc::new(Blocklist::new(
            args.config.ipv4_prefix,
            args.config.ipv6_prefix,
        ));
        let parts = (args, inbox.clone(), blocklist.clone());
        let (actor, _) = Actor::spawn(None, FraudDetector, parts).await?;
        Ok(FraudHandle {
            actor,
            inbox,
            blocklist,
        })
    }
}

impl Actor for FraudDetector {
    type Msg = FraudMsg;
    type State = FraudState;
    type Arguments = Parts;

    async fn pre_start(
        &self,
        myself: ActorRef<FraudMsg>,
        (args, inbox, blocklist): Parts,
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
            blocks: Deadlines::new(args.config.max_tracked_keys),
            args,
            inbox,
            windows,
            blocklist,
            graces: Deadlines::new(GRACE_LIMIT),
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
                let evicted = state.windows.evicted();
                let mut tripped = Vec::new();
                for (code, ip, at) in clicks {
                    let key = WindowKey {
                        code,
                        range: net::ip_range(ip, v4, v6),
                    };
                    if let Some(shared) = &mut state.args.cluster {
                        shared.add(key, at);
                        continue;
                    }
                    let now = at.max(0) as u64;
                    if let Observation::Tripped { clicks } = state.windows.observe(key.clone(), now)
                    {
                        tripped.push((key, u64::from(clicks)));
                    }
                }
                state
                    .metrics
                    .evicted
                    .increment(state.windows.evicted() - evicted);
                state.metrics.tracked.set(state.windows.len() as f64);
                for (key, clicks) in tripped {
                    state.act(key, clicks, true).await;
                }
            }
            FraudMsg::Flush => {
                let Some(shared) = &mut state.args.cluster else {
                    return Ok(());
                };
                let flushed = shared.flush(Utc::now().timestamp()).await;
                let now = now_secs();
                for (key, until) in flushed.blocked {
                    state.block(key, until, now);
                }
                for over in flushed.over {
                    state.act(over.key, over.clicks, over.recorder).await;
                }
            }
            FraudMsg::Forget(code) => state.forget(&code),
            FraudMsg::Reenabled(code) => {
                state.forget(&code);
                let now = now_secs();
                let until = now + state.args.config.grace_after_enable.as_secs();
                if let Some(shared) = &state.args.cluster {
                    shared.share_grace(&code, until).await;
                }
                state.graces.set(Arc::from(code), until, now);
            }
        }
        Ok(())
    }
}

fn now_secs() -> u64 {
    Utc::now().timestamp().max(0) as u64
}

impl FraudState {
    fn forget(&mut self, code: &str) {
        self.windows.forget_code(code);
        if let Some(shared) = &mut self.args.cluster {
            shared.forget(code, Utc::now().timestamp());
        }
        self.metrics.tracked.set(self.windows.len() as f64);
    }

    /// The end of `code`'s grace period: set here, or by any node in a cluster.
    async fn grace(&self, code: &str, now: u64) -> Option<u64> {
        let here = self.graces.active(&Arc::from(code), now);
        let shared = match &self.args.cluster {
            Some(shared) => shared.grace(code, now as i64).await,
            None => None,
        };
        here.max(shared)
    }

    /// `key` went over the threshold with `clicks`: block the range or disable
    /// the link, as the link's policy says. Only the `recorder` (one node in a
    /// cluster) records the incident and disables.
    async fn act(&mut self, key: WindowKey, clicks: u64, recorder: bool) {
        let code = &*key.code;
        let link = match self.args.store.get_link(code).await {
            Ok(Some(link)) => link,
            Ok(None) => return,
            Err(e) => {
                StoreFailed::new(StoreOp::GetLink, &e).code(code).emit();
                return;
            }
        };
        let clicks = u32::try_from(clicks).unwrap_or(u32::MAX);
        let now = now_secs();
        let policy = link.fraud_policy.unwrap_or(self.args.config.policy);
        let grace = match policy {
            FraudAction::DisableLink => self.grace(code, now).await,
            FraudAction::BlockRange => None,
        };
        match policy::decide(policy, grace, now) {
            FraudAction::BlockRange => {
                let until = now + self.args.config.block_for.as_secs();
                self.block(key.clone(), until, now);
                if let Some(shared) = &self.args.cluster {
                    shared.share_block(&key, until).await;
                }
                if recorder {
                    let ip_range = key.range.to_string();
                    RangeBlockedForFraud {
                        code,
                        ip_range: &ip_range,
                        clicks,
                        until,
                    }
                    .emit();
                    let incident = self.incident(&link, ip_range, clicks, FraudAction::BlockRange);
                    self.record(incident).await;
                }
            }
            FraudAction::DisableLink if recorder => {
                self.disable(link, key.range.to_string(), clicks).await;
            }
            FraudAction::DisableLink => {}
        }
    }

    /// Blocks `key` until `until` here; what the cap pushes out is unblocked.
    fn block(&mut self, key: WindowKey, until: u64, now: u64) {
        if self.blocks.active(&key, now).is_some_and(|u| u >= until) {
            return;
        }
        self.blocklist.insert(key.clone(), until);
        for gone in self.blocks.set(key, until, now) {
            self.blocklist.remove(&gone);
        }
    }

    fn incident(
        &self,
        link: &Link,
        ip_range: String,
        clicks: u32,
        action: FraudAction,
    ) -> Incident {
        Incident {
            id: Uuid::now_v7(),
            account_id: link.account_id,
            code: link.code.clone(),
            ip_range,
            clicks,
            window_secs: self.args.config.window.as_secs(),
            at: Utc::now(),
            action,
        }
    }

    async fn record(&self, incident: Incident) {
        if let Err(e) = self.args.store.record_incident(&incident).await {
            StoreFailed::new(StoreOp::RecordIncident, &e)
                .code(&incident.code)
                .emit();
        }
    }

    /// Disables the link unless something already did; idempotent.
    async fn disable(&mut self, link: Link, ip_range: String, clicks: u32) {
        let code = link.code.as_str();
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
        let incident = self.incident(&link, ip_range, clicks, FraudAction::DisableLink);
        self.record(incident).await;
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
