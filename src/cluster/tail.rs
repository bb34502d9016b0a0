//! Tailing the change feed (every [`TAIL_EVERY`]): each change another node
//! made is applied here once — a link's cached copy dropped, an endpoint's
//! directory entry and actor started, reloaded or stopped. The same tick asks
//! the endpoint actors running here to read their outbox, which is how rows
//! written by other nodes reach their owner.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use ractor::ActorRef;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    cql::ClusterCql,
    feed::{Change, ChangeKind, FeedCursor},
};
use crate::ticker::Ticker;
use crate::{
    fraud::FraudHandle,
    link_cache::LinkCache,
    metrics::{
        ClusterMetrics,
        events::{ClusterCallFailed, ClusterOp, StoreFailed, StoreOp},
    },
    store::SharedStore,
    webhooks::{WebhookDirectory, supervisor::SupervisorMsg},
};

pub const TAIL_EVERY: Duration = Duration::from_millis(250);
/// A change becomes readable within this of its timestamp (slow writes, skew).
const GRACE: Duration = Duration::from_secs(2);
/// Changes remembered inside the grace window.
const SEEN_CAP: usize = 65_536;
/// Rows read per bucket and tick; a full read is finished on the next tick.
const READ_LIMIT: usize = 4_096;

pub struct Tail {
    pub cql: Arc<ClusterCql>,
    pub store: SharedStore,
    pub cache: Arc<LinkCache>,
    pub directory: Arc<WebhookDirectory>,
    pub webhooks: ActorRef<SupervisorMsg>,
    pub fraud: Option<FraudHandle>,
    pub metrics: ClusterMetrics,
}

impl Tail {
    /// Runs until `stop` changes. State was loaded just before (at start), so
    /// the feed is read from now on.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let mut cursor = FeedCursor::new(now_ms(), GRACE, SEEN_CAP);
        let mut read_at = now_ms();
        let mut ticker = Ticker::new(TAIL_EVERY, stop);
        while ticker.tick().await {
            if self.read(&mut cursor).await {
                read_at = now_ms();
            }
            let lag = (now_ms() - read_at).max(0) as f64 / 1000.0;
            self.metrics.feed_lag.set(lag);
            self.directory.rescan_outboxes();
        }
    }

    /// One pass over the feed; `true` when every planned bucket was read whole.
    async fn read(&self, cursor: &mut FeedCursor) -> bool {
        let started = now_ms();
        let plan = cursor.plan(started);
        if plan.resync {
            // Fell behind the feed's retention: reload what the feed would have said.
            self.resync().await;
            cursor.reset(started);
            return true;
        }
        let mut rows = Vec::new();
        let mut complete = true;
        for bucket in plan.buckets {
            match self
                .cql
                .read_changes(bucket, plan.from_ms, READ_LIMIT)
                .await
            {
                Ok(read) => {
                    complete &= read.len() < READ_LIMIT;
                    rows.extend(read);
                }
                Err(e) => {
                    ClusterCallFailed {
                        operation: ClusterOp::ReadChanges,
                        error: &e,
                    }
                    .emit();
                    complete = false;
                    break;
                }
            }
        }
        let me = self.cql.node_id();
        for change in cursor.accept(rows) {
            // This node applied its own changes as it made them.
            if change.node != me {
                self.apply(&change).await;
            }
        }
        if complete {
            cursor.advance(started);
        }
        complete
    }

    async fn apply(&self, change: &Change) {
        match change.kind {
            ChangeKind::LinkUpserted | ChangeKind::LinkDeleted => {
                self.cache.remove(&change.key);
                // The feed does not say whether the link was re-enabled, so any
                // change restarts its fraud window here, as a re-enable does on
                // the node that took it (an owner's edit only helps the owner).
                if let Some(fraud) = &self.fraud {
                    fraud.forget(&change.key);
                }
            }
            ChangeKind::EndpointUpserted | ChangeKind::EndpointDeleted => {
                if let Ok(id) = change.key.parse::<Uuid>() {
                    self.reload_endpoint(id).await;
                }
            }
            // Accounts and keys are read from the store on every request.
            ChangeKind::AccountUpserted
            | ChangeKind::AccountDeleted
            | ChangeKind::KeyUpserted
            | ChangeKind::KeyDeleted => {}
        }
    }

    /// Brings the endpoint here in line with the store: updated, or removed
    /// (its actor stopped first) when it is gone.
    async fn reload_endpoint(&self, id: Uuid) {
        match self.store.get_endpoint(id).await {
            Ok(Some(endpoint)) => {
                let _ = self
                    .webhooks
                    .cast(SupervisorMsg::Upsert(Box::new(endpoint)));
            }
            Ok(None) => self.remove_endpoint(id).await,
            Err(e) => StoreFailed::new(StoreOp::GetEndpoint, &e)
                .endpoint(id)
                .emit(),
        }
    }

    async fn remove_endpoint(&self, id: Uuid) {
        let Some(handle) = self.directory.by_id.pin().get(&id).cloned() else {
            return;
        };
        let _ = ractor::call!(self.webhooks, SupervisorMsg::Remove, id);
        self.directory.remove(handle.account_id, id);
    }

    async fn resync(&self) {
        let endpoints = match self.store.all_endpoints().await {
            Ok(endpoints) => endpoints,
            Err(e) => {
                StoreFailed::new(StoreOp::GetEndpoint, &e).emit();
                return;
            }
        };
        let known: std::collections::HashSet<Uuid> = endpoints.iter().map(|e| e.id).collect();
        for id in self.directory.ids() {
            if !known.contains(&id) {
                self.remove_endpoint(id).await;
            }
        }
        for endpoint in endpoints {
            let _ = self
                .webhooks
                .cast(SupervisorMsg::Upsert(Box::new(endpoint)));
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
