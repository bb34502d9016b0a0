//! The membership and lease loop: one task per node that, every heartbeat,
//! writes the heartbeat row, reads the live nodes, ticks the [`LeaseTable`]
//! over every endpoint plus the expiry singleton and carries out its actions.
//! Heartbeat and leases share the task on purpose: a node whose lease loop is
//! stuck stops looking live, and its leases move.

use std::{collections::VecDeque, future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use ractor::ActorRef;
use tokio::{sync::watch, time::Instant};
use uuid::Uuid;

use super::{
    cql::ClusterCql,
    lease::{LeaseAction, LeaseName, LeaseOutcome, LeaseTable, LeaseTiming},
};
use crate::ticker::Ticker;
use crate::{
    metrics::{
        ClusterMetrics,
        events::{ClusterCallFailed, ClusterOp, LeaseTaken},
    },
    webhooks::{WebhookDirectory, supervisor::SupervisorMsg},
};

/// Lease calls carried out at once.
const CONCURRENT_CALLS: usize = 32;

pub struct LeaseLoop {
    pub cql: Arc<ClusterCql>,
    pub table: LeaseTable,
    pub heartbeat: Duration,
    pub started_at: DateTime<Utc>,
    pub addr: String,
    pub directory: Arc<WebhookDirectory>,
    pub webhooks: ActorRef<SupervisorMsg>,
    /// `true` while this node holds the expiry singleton.
    pub expiry: watch::Sender<bool>,
    /// The live nodes as last read (this node included).
    pub live: watch::Sender<Vec<Uuid>>,
    pub metrics: ClusterMetrics,
}

impl LeaseLoop {
    pub fn new_table(node: Uuid, lease_ttl: Duration) -> LeaseTable {
        LeaseTable::new(node, LeaseTiming::from_ttl(lease_ttl))
    }

    /// Runs until `stop` changes; then stops every actor it runs and releases
    /// its leases, so the next owners need not wait for the TTL.
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        let mut ticker = Ticker::new(self.heartbeat, stop);
        while ticker.tick().await {
            self.tick().await;
        }
        self.release_all().await;
    }

    async fn tick(&mut self) {
        let me = self.cql.node_id();
        let beat = self.cql.heartbeat(self.started_at, &self.addr);
        if let Err(e) = self.bounded(beat).await {
            ClusterCallFailed {
                operation: ClusterOp::Heartbeat,
                error: &e,
            }
            .emit();
        }
        match self.bounded(self.cql.live_nodes()).await {
            Ok(nodes) => {
                let mut ids: Vec<Uuid> = nodes.into_iter().map(|n| n.node_id).collect();
                if !ids.contains(&me) {
                    ids.push(me);
                }
                ids.sort();
                self.metrics.live_nodes.set(ids.len() as f64);
                self.live.send_replace(ids);
            }
            // The last known set stands; renewals fail anyway if the database is away.
            Err(e) => ClusterCallFailed {
                operation: ClusterOp::LiveNodes,
                error: &e,
            }
            .emit(),
        }
        let live = self.live.borrow().clone();
        let leases = self
            .directory
            .ids()
            .into_iter()
            .map(LeaseName::Endpoint)
            .chain([LeaseName::Expiry]);
        let actions = self.table.tick(Instant::now().into_std(), &live, leases);
        self.carry_out(actions).await;
        self.metrics
            .leases_held
            .set(self.table.held().count() as f64);
    }

    /// Carries out `actions` and whatever their answers call for. Actor actions
    /// go first and in order (a `StopActor` finishes before the `Release` of
    /// the same lease, which the table always emits after it); database calls
    /// then run together.
    async fn carry_out(&mut self, actions: Vec<LeaseAction>) {
        let mut queue: VecDeque<LeaseAction> = actions.into();
        while !queue.is_empty() {
            let mut calls = Vec::new();
            for action in queue.drain(..) {
                match action {
                    LeaseAction::StartActor { lease, epoch } => self.start(lease, epoch),
                    LeaseAction::StopActor { lease } => self.stop(lease).await,
                    call => calls.push(call),
                }
            }
            let answers: Vec<(LeaseAction, LeaseOutcome)> = futures::stream::iter(calls)
                .map(|call| self.call(call))
                .buffer_unordered(CONCURRENT_CALLS)
                .collect()
                .await;
            for (call, outcome) in answers {
                let now = Instant::now().into_std();
                queue.extend(self.table.settle(call, outcome, now));
            }
        }
    }

    async fn call(&self, call: LeaseAction) -> (LeaseAction, LeaseOutcome) {
        let answer = async { Ok::<_, String>(self.cql.lease_call(call).await) };
        let outcome = match self.bounded(answer).await {
            Ok(outcome) => outcome.unwrap_or(LeaseOutcome::Failed),
            Err(e) => {
                ClusterCallFailed {
                    operation: ClusterOp::Lease,
                    error: &e,
                }
                .emit();
                LeaseOutcome::Failed
            }
        };
        (call, outcome)
    }

    fn start(&self, lease: LeaseName, epoch: i64) {
        LeaseTaken {
            lease: &lease.key(),
            epoch,
        }
        .emit();
        match lease {
            LeaseName::Endpoint(id) => {
                let _ = self.webhooks.cast(SupervisorMsg::Own(id));
            }
            LeaseName::Expiry => {
                self.expiry.send_replace(true);
            }
        }
    }

    /// Returns once the actor has stopped.
    async fn stop(&self, lease: LeaseName) {
        match lease {
            LeaseName::Endpoint(id) => {
                let _ = ractor::call!(self.webhooks, SupervisorMsg::Disown, id);
            }
            LeaseName::Expiry => {
                self.expiry.send_replace(false);
            }
        }
    }

    async fn release_all(&mut self) {
        // Gone from the live set first, so the others claim what is released
        // below at once; they cannot before it is released (LWT).
        if let Err(e) = self.bounded(self.cql.leave()).await {
            ClusterCallFailed {
                operation: ClusterOp::Heartbeat,
                error: &e,
            }
            .emit();
        }
        let held: Vec<(LeaseName, i64)> = self.table.held().collect();
        for (lease, _) in &held {
            self.stop(*lease).await;
        }
        let releases = held
            .into_iter()
            .map(|(lease, epoch)| LeaseAction::Release { lease, epoch });
        futures::stream::iter(releases)
            .map(|call| self.call(call))
            .buffer_unordered(CONCURRENT_CALLS)
            .collect::<Vec<_>>()
            .await;
        self.metrics.leases_held.set(0.0);
    }

    /// A database call that may not hold the loop past a heartbeat or two:
    /// the lease deadlines are checked only between calls.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        let limit = (self.heartbeat * 2).max(Duration::from_millis(500));
        match tokio::time::timeout(limit, call).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }
}
