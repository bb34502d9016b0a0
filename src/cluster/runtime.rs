//! Cluster mode running: the lease loop ([`super::membership`]) and the feed
//! tail ([`super::tail`]) as tasks, the [`ChangeLog`] API writes go through,
//! and what other stages read (the expiry singleton flag, the live nodes).

use std::{net::SocketAddr, sync::Arc};

use chrono::Utc;
use ractor::ActorRef;
use rand::Rng;
use scylla::client::session::Session;
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use crate::{config::ClusterConfig, fraud::FraudHandle};

use super::{
    cql::{ClusterCql, ClusterOptions},
    feed::{Change, ChangeKind},
    membership::LeaseLoop,
    tail::Tail,
};
use crate::{
    link_cache::LinkCache,
    metrics::{
        ClusterMetrics,
        events::{ClusterCallFailed, ClusterOp},
    },
    store::SharedStore,
    webhooks::{WebhookDirectory, supervisor::SupervisorMsg},
};

/// Where API writes say what they changed, so every other node follows.
/// Outside cluster mode it does nothing.
#[derive(Clone, Default)]
pub struct ChangeLog(Option<Arc<ClusterCql>>);

impl ChangeLog {
    pub fn new(cql: Arc<ClusterCql>) -> Self {
        Self(Some(cql))
    }

    /// Appends one change; a failure is counted and logged (other nodes then
    /// see it only through `redirect.cache_ttl` or a restart).
    pub async fn note(&self, kind: ChangeKind, key: impl ToString) {
        let Some(cql) = &self.0 else {
            return;
        };
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let clock_seq = rand::rng().random::<u16>() & 0x3fff;
        let change = Change::new(kind, key.to_string(), cql.node_id(), nanos, clock_seq);
        if let Err(e) = cql.append_change(&change).await {
            ClusterCallFailed {
                operation: ClusterOp::AppendChange,
                error: &e,
            }
            .emit();
        }
    }
}

/// What cluster mode needs from the rest of the server.
pub struct ClusterParts {
    pub config: ClusterConfig,
    pub addr: SocketAddr,
    pub store: SharedStore,
    pub cache: Arc<LinkCache>,
    pub directory: Arc<WebhookDirectory>,
    pub webhooks: ActorRef<SupervisorMsg>,
    pub fraud: Option<FraudHandle>,
}

/// Cluster mode, opened (tables and statements ready) but not yet running.
pub struct Cluster {
    pub cql: Arc<ClusterCql>,
    /// `true` while this node holds the expiry singleton.
    pub expiry: watch::Receiver<bool>,
    expiry_tx: watch::Sender<bool>,
    /// The live nodes as last read (this node included).
    pub live: watch::Receiver<Vec<Uuid>>,
    live_tx: watch::Sender<Vec<Uuid>>,
}

impl Cluster {
    pub async fn open(
        session: Arc<Session>,
        keyspace: &str,
        config: &ClusterConfig,
        fraud_window: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let node_id = config.node_id.unwrap_or_else(Uuid::now_v7);
        let options = ClusterOptions {
            node_id,
            lease_ttl: config.lease_ttl,
            fraud_window,
        };
        let cql = ClusterCql::open(session, keyspace, options).await?;
        let (expiry_tx, expiry) = watch::channel(false);
        let (live_tx, live) = watch::channel(vec![node_id]);
        Ok(Self {
            cql: Arc::new(cql),
            expiry,
            expiry_tx,
            live,
            live_tx,
        })
    }

    pub fn changes(&self) -> ChangeLog {
        ChangeLog::new(self.cql.clone())
    }

    /// Starts the lease loop and the feed tail.
    pub fn run(self, parts: ClusterParts) -> Running {
        tracing::info!(node = %self.cql.node_id(), "cluster mode: joining");
        parts.directory.set_cluster();
        let metrics = ClusterMetrics::new();
        let (stop, stopped) = watch::channel(false);
        let leases = LeaseLoop {
            cql: self.cql.clone(),
            table: LeaseLoop::new_table(self.cql.node_id(), parts.config.lease_ttl),
            heartbeat: parts.config.heartbeat,
            started_at: Utc::now(),
            addr: parts.addr.to_string(),
            directory: parts.directory.clone(),
            webhooks: parts.webhooks.clone(),
            expiry: self.expiry_tx,
            live: self.live_tx,
            metrics: metrics.clone(),
        };
        let tail = Tail {
            cql: self.cql,
            store: parts.store,
            cache: parts.cache,
            directory: parts.directory,
            webhooks: parts.webhooks,
            fraud: parts.fraud,
            metrics,
        };
        Running {
            stop,
            tasks: vec![
                tokio::spawn(leases.run(stopped.clone())),
                tokio::spawn(tail.run(stopped)),
            ],
        }
    }
}

pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops tailing and leasing: every actor this node ran is stopped and its
    /// lease released, so the other nodes take over without waiting for TTLs.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
