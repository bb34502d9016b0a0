//! Wires the stages in flow order (store → cache → fraud → clicks → HTTP) and
//! takes them down in reverse: stop accepting, finish requests, flush every
//! shard, make the store durable.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use ractor::{Actor, ActorRef};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

use crate::{
    clicks::{
        ClickPipelineConfig, ClickRouter, ShardSlot,
        enrich::GeoIp,
        shard::{self, ClickSupervisor, SupervisorArgs, SupervisorMsg},
    },
    cluster::{
        fraud_sync::SharedCounts,
        runtime::{Cluster, ClusterParts},
    },
    config::{Config, StoreBackend},
    domain::random_token,
    events::EventBus,
    fraud::{FraudArgs, FraudDetector, FraudHandle},
    http::{self, AppState, auth::token_hash},
    link_cache::LinkCache,
    metrics::{RedirectMetrics, WebhookMetrics},
    store::{
        EmbeddedStore, ScyllaOptions, ScyllaStore, SharedStore,
        sealing::{self, Sealer},
    },
    supervision,
    webhooks::{
        Fanout, WebhookDirectory,
        client::WebhookClient,
        endpoint::EndpointContext,
        supervisor::{self, SupervisorMsg as WebhookMsg, WebhookSupervisor},
    },
};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// A server that is up. Dropping it does not stop it: call [`Running::shutdown`].
pub struct Running {
    pub local_addr: SocketAddr,
    pub events: EventBus,
    pub directory: Arc<WebhookDirectory>,
    /// The click shards' slots, for tests that watch or crash a shard.
    #[doc(hidden)]
    pub shards: Vec<Arc<ShardSlot>>,
    /// Set when this start generated the admin token (first start, none configured).
    pub generated_admin_token: Option<String>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Graceful shutdown; returns once every click is written and the store is durable.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task failed")?
    }
}

/// Serves on `listener` until `shutdown` resolves, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let running = start(config, listener).await?;
    if let Some(token) = &running.generated_admin_token {
        // Printed once, on the start that generated it; only its digest is stored.
        println!("admin token (shown once, store it now): {token}");
    }
    tracing::info!(addr = %running.local_addr, "listening");
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await
}

pub async fn open_store(config: &Config) -> anyhow::Result<SharedStore> {
    Ok(open_backend(config).await?.0)
}

/// The store, and on the scylla backend cluster mode opened on its keyspace.
async fn open_backend(config: &Config) -> anyhow::Result<(SharedStore, Option<Cluster>)> {
    match config.store.backend {
        StoreBackend::Embedded => {
            let store = EmbeddedStore::open(&config.store.path)
                .with_context(|| format!("opening store.path {}", config.store.path.display()))?;
            let dir = config.store.path.as_path();
            let (keys, generated) = sealing::load_keys(&config.auth.encryption, Some(dir))
                .map_err(anyhow::Error::msg)?;
            let store = store.with_sealer(Sealer::new(keys));
            sealing::check_and_reseal(&store, generated.map(|key| (dir, key)))
                .await
                .map_err(anyhow::Error::msg)?;
            Ok((Arc::new(store), None))
        }
        StoreBackend::Scylla => {
            let options = ScyllaOptions::from_config(&config.store);
            // The store's error already names the nodes; say which keyspace too.
            let store = ScyllaStore::open(&options).await.with_context(|| {
                format!(
                    "opening the scylla store (store.scylla_nodes = [{}], keyspace {})",
                    options.nodes.join(", "),
                    options.keyspace
                )
            })?;
            // No key file here: every node must hold the same key, so it is configured.
            let (keys, _) =
                sealing::load_keys(&config.auth.encryption, None).map_err(anyhow::Error::msg)?;
            if keys.is_none() {
                tracing::warn!(
                    "auth.encryption_key is not set: webhook secrets are stored in clear in the scylla keyspace"
                );
            }
            let store = store.with_sealer(Sealer::new(keys));
            sealing::check_and_reseal(&store, None)
                .await
                .map_err(anyhow::Error::msg)?;
            let cluster = Cluster::open(
                store.cluster_handle(),
                &options.keyspace,
                &config.cluster,
                config.fraud.window,
            )
            .await
            .context("opening the cluster tables")?;
            Ok((Arc::new(store), Some(cluster)))
        }
    }
}

/// Starts every stage and the HTTP server; returns once it accepts connections.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let prometheus = crate::metrics::install();
    let local_addr = listener.local_addr()?;
    let (store, cluster) = open_backend(&config).await?;
    let changes = cluster.as_ref().map(Cluster::changes).unwrap_or_default();

    let (admin_token_hash, generated_admin_token) = admin_token(&config, &store).await?;
    let events = EventBus::new(65536);
    let cache = Arc::new(LinkCache::new(
        store.clone(),
        config.redirect.cache_capacity,
        config.redirect.negative_cache_ttl,
        config.redirect.cache_ttl,
        &config.server.public_base_url,
    ));

    let directory = Arc::new(WebhookDirectory::default());
    let fanout = Fanout {
        directory: directory.clone(),
        bus: events.clone(),
    };
    let client = WebhookClient::new(
        config.webhooks.timeout,
        config.webhooks.allow_private_targets,
    )
    .map_err(|e| anyhow::anyhow!("building the webhook HTTP client: {e}"))?;
    let ctx = Arc::new(EndpointContext {
        store: store.clone(),
        client,
        config: config.webhooks.clone(),
        directory: directory.clone(),
        metrics: WebhookMetrics::new(),
        changes: changes.clone(),
    });
    let restart = supervision::restart_policy(supervisor::RESTART_POLICY);
    let (webhooks, _) = Actor::spawn(
        None,
        WebhookSupervisor::default(),
        supervisor::SupervisorArgs {
            ctx,
            restart,
            cluster: cluster.is_some(),
        },
    )
    .await
    .context("starting the webhook endpoints")?;
    let (stop_expiry, expiry_stopped) = watch::channel(false);
    // One node: always the expiry node. A cluster: the expiry lease's holder.
    let expiry_active = match &cluster {
        Some(cluster) => cluster.expiry.clone(),
        None => watch::channel(true).1,
    };
    let expiry = tokio::spawn(crate::expiry::run(
        store.clone(),
        fanout.clone(),
        config.server.public_base_url.clone(),
        expiry_active,
        expiry_stopped,
    ));

    let fraud = if config.fraud.enabled {
        Some(
            FraudDetector::start(FraudArgs {
                config: config.fraud.clone(),
                store: store.clone(),
                cache: cache.clone(),
                fanout: fanout.clone(),
                public_base_url: config.server.public_base_url.clone(),
                cluster: cluster.as_ref().map(|cluster| {
                    SharedCounts::new(
                        cluster.cql.clone(),
                        config.fraud.window.as_secs(),
                        config.fraud.threshold,
                        config.fraud.max_tracked_keys,
                        config.cluster.heartbeat.min(Duration::from_secs(1)),
                    )
                }),
                changes: changes.clone(),
            })
            .await
            .context("starting the fraud detector")?,
        )
    } else {
        None
    };

    let clicks = ClickRouter::new(
        config.redirect.shards,
        config.redirect.shard_queue_limit,
        config.redirect.flush_max_batch,
        config.redirect.durable_ack,
    );
    let live = Arc::new(crate::clicks::live::LiveClicks::default());
    let pipeline = Arc::new(ClickPipelineConfig {
        store: store.clone(),
        fanout: fanout.clone(),
        fraud: fraud.clone(),
        geo: GeoIp::open(config.enrich.geoip_mmdb.as_deref())?,
        trusted_proxies: config.server.trusted_proxies.clone(),
        flush_interval: config.redirect.flush_interval,
        flush_max_batch: config.redirect.flush_max_batch,
        live: live.clone(),
    });
    let (click_supervisor, _) = Actor::spawn(
        None,
        ClickSupervisor::default(),
        SupervisorArgs {
            slots: clicks.slots().to_vec(),
            config: pipeline,
            restart: supervision::restart_policy(shard::RESTART_POLICY),
        },
    )
    .await
    .context("starting the click shards")?;

    let shards = clicks.slots().to_vec();
    let cluster = cluster.map(|cluster| {
        cluster.run(ClusterParts {
            config: config.cluster.clone(),
            addr: local_addr,
            store: store.clone(),
            cache: cache.clone(),
            directory: directory.clone(),
            webhooks: webhooks.clone(),
            fraud: fraud.clone(),
        })
    });
    let (limits, trusted_proxies) = (
        config.auth.limits.clone(),
        config.server.trusted_proxies.clone(),
    );
    let state = Arc::new(AppState {
        config,
        store: store.clone(),
        cache,
        clicks,
        fanout,
        directory: directory.clone(),
        webhooks: webhooks.clone(),
        endpoint_creation: tokio::sync::Mutex::new(()),
        changes,
        fraud: fraud.clone(),
        prometheus: prometheus.clone(),
        admin_token_hash,
        redirect_metrics: RedirectMetrics::new(),
        limits: http::rate_limits::Limits::new(&limits, &trusted_proxies),
        keys: http::keys::KeyState::new(limits.max_tracked_clients),
        live,
    });

    // Histograms accumulate until rendered; without a scraper they are drained here.
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            prometheus.run_upkeep();
        }
    });

    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        http::serve(
            listener,
            state,
            async {
                let _ = stopped.await;
            },
            SHUTDOWN_GRACE,
        )
        .await;
        let result = stop_pipeline(click_supervisor, fraud).await;
        let _ = stop_expiry.send(true);
        let _ = expiry.await;
        // Leases go back (their actors stopped first) so other nodes take over now.
        if let Some(cluster) = cluster {
            cluster.shutdown().await;
        }
        // Endpoint actors write their last outcomes; undelivered rows stay in the outbox.
        let _ = ractor::call!(webhooks, WebhookMsg::StopAll);
        webhooks.stop(None);
        let result = match result {
            Ok(()) => store.flush().await.context("making the store durable"),
            Err(e) => Err(e),
        };
        upkeep.abort();
        result
    });

    Ok(Running {
        local_addr,
        events,
        directory,
        shards,
        generated_admin_token,
        stop,
        task,
    })
}

async fn stop_pipeline(
    click_supervisor: ActorRef<SupervisorMsg>,
    fraud: Option<FraudHandle>,
) -> anyhow::Result<()> {
    ractor::call!(click_supervisor, SupervisorMsg::FlushAll)
        .map_err(|e| anyhow::anyhow!("flushing click shards: {e}"))?;
    click_supervisor
        .stop_children_and_wait(None, Some(Duration::from_secs(10)))
        .await;
    let _ = click_supervisor
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await;
    if let Some(fraud) = fraud {
        fraud.stop_and_wait().await;
    }
    Ok(())
}

/// `relurl admin-token reset`: a new admin token, whose digest replaces the
/// stored one; returned to be shown once. A configured token takes precedence
/// over the stored one, so with one configured there is nothing to reset here.
pub async fn reset_admin_token(config: &Config) -> anyhow::Result<String> {
    anyhow::ensure!(
        config.auth.admin_token.is_empty(),
        "auth.admin_token is set in the configuration and takes precedence over the stored \
         token: change it there, or remove it (and RELURL_AUTH__ADMIN_TOKEN) and reset again"
    );
    let store = open_store(config).await.context(
        "the embedded store is opened by one process at a time: stop the server, then reset",
    )?;
    let token = random_token("rladm_", 40);
    let digest = crate::webhooks::signer::hex(&token_hash(&token));
    store
        .meta_set(ADMIN_TOKEN_KEY, &digest)
        .await
        .context("writing the admin token digest")?;
    store.flush().await.context("making the store durable")?;
    Ok(token)
}

/// The configured admin token, or the one generated at first start (its digest persisted).
async fn admin_token(
    config: &Config,
    store: &SharedStore,
) -> anyhow::Result<([u8; 32], Option<String>)> {
    if !config.auth.admin_token.is_empty() {
        return Ok((token_hash(&config.auth.admin_token), None));
    }
    use crate::webhooks::signer::{hex, unhex};
    let candidate = random_token("rladm_", 40);
    let candidate_hex = hex(&token_hash(&candidate));
    let stored = store
        .meta_get_or_insert(ADMIN_TOKEN_KEY, &candidate_hex)
        .await
        .context("reading the admin token digest")?;
    let digest = unhex(&stored).context("stored admin token digest is corrupt")?;
    let generated = (stored == candidate_hex).then_some(candidate);
    Ok((digest, generated))
}
