//! The fraud detector: one actor counting persisted clicks per (link, IP range)
//! in a sliding window. Past `fraud.threshold` it disables the link (store, then
//! cache: redirects answer 410 at once), records an incident and publishes
//! `link.updated` with `reason: "fraud"`.
//!
//! - [`window`]: the counting rules, pure.

pub mod window;

use std::sync::Arc;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

use crate::metrics::events::{LinkDisabledForFraud, StoreFailed, StoreOp};
use crate::{
    config::FraudConfig,
    domain::{Click, Incident},
    events::{Change, Event},
    link_cache::LinkCache,
    net,
    store::SharedStore,
    webhooks::Fanout,
};
use window::{FraudWindows, Observation, WindowKey};

pub enum FraudMsg {
    Observe(Vec<(Arc<str>, std::net::IpAddr, i64)>),
    /// The link was re-enabled: forget its windows.
    Forget(String),
}

/// How the rest of the system talks to the detector; sends never wait.
#[derive(Clone)]
pub struct FraudHandle {
    actor: ActorRef<FraudMsg>,
}

impl FraudHandle {
    pub fn observe(&self, clicks: &[Click]) {
        let batch = clicks
            .iter()
            .map(|c| (Arc::from(c.code.as_str()), c.ip, c.at.timestamp()))
            .collect();
        // A stopped detector (shutdown) has nothing left to protect.
        let _ = self.actor.cast(FraudMsg::Observe(batch));
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
}

pub struct FraudState {
    args: FraudArgs,
    windows: FraudWindows,
    metrics: crate::metrics::FraudMetrics,
}

pub struct FraudDetector;

impl FraudDetector {
    pub async fn start(args: FraudArgs) -> Result<FraudHandle, ractor::SpawnErr> {
        let (actor, _) = Actor::spawn(None, FraudDetector, args).await?;
        Ok(FraudHandle { actor })
    }
}

impl Actor for FraudDetector {
    type Msg = FraudMsg;
    type State = FraudState;
    type Arguments = FraudArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<FraudMsg>,
        args: FraudArgs,
    ) -> Result<FraudState, ActorProcessingErr> {
        let windows = FraudWindows::new(
            args.config.window.as_secs(),
            args.config.threshold,
            args.config.max_tracked_keys,
        );
        Ok(FraudState {
            args,
            windows,
            metrics: crate::metrics::FraudMetrics::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<FraudMsg>,
        msg: FraudMsg,
        state: &mut FraudState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FraudMsg::Observe(clicks) => {
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
            FraudMsg::Forget(code) => {
                state.windows.forget_code(&code);
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
