//! The webhook supervisor: one endpoint actor per enabled endpoint, started at
//! boot and following API changes. A failed actor is restarted with its endpoint
//! and pending deliveries reloaded from the store, under the shared
//! [`crate::supervision`] rules; while one is down its deliveries wait in the
//! outbox and `relurl_webhook_endpoints_failing` counts it.

use std::{collections::HashSet, sync::Arc, time::Duration};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use uuid::Uuid;

use super::endpoint::{EndpointActor, EndpointArgs, EndpointContext, EndpointMsg};
use crate::{
    domain::Endpoint,
    metrics::events::{StoreFailed, StoreOp, Supervised},
    supervision::{ChildKind, RestartPolicy, SupervisingActor, Supervisor, SupervisorActor},
};

/// Restarts one endpoint actor may use in a minute.
pub const RESTART_POLICY: RestartPolicy = RestartPolicy::per_minute(5);

pub enum SupervisorMsg {
    /// An endpoint was created or changed.
    Upsert(Box<Endpoint>),
    /// An endpoint is being deleted: stop its actor, then answer.
    Remove(Uuid, RpcReplyPort<()>),
    /// Stop every endpoint actor (shutdown), then answer.
    StopAll(RpcReplyPort<()>),
    /// A down endpoint actor's restart window has freed (sent by the supervisor).
    Retry(Uuid),
    /// Cluster mode: this node took the endpoint's lease; run its actor.
    Own(Uuid),
    /// A failed `Own` reload, tried again while the lease is still held.
    OwnAgain(Uuid),
    /// Cluster mode: this node is giving up the endpoint's lease: stop its
    /// actor, then answer (the lease is released only after).
    Disown(Uuid, RpcReplyPort<()>),
}

pub struct SupervisorArgs {
    pub ctx: Arc<EndpointContext>,
    pub restart: RestartPolicy,
    /// Cluster mode: run only the actors whose lease this node holds.
    pub cluster: bool,
}

/// Endpoint actors as a child kind.
pub struct Endpoints {
    ctx: Arc<EndpointContext>,
    /// Cluster mode: the endpoints whose lease this node holds (bounded by the
    /// endpoints that exist). `None`: one node, every endpoint runs here.
    owned: Option<HashSet<Uuid>>,
}

impl ChildKind for Endpoints {
    const KIND: Supervised = Supervised::Endpoint;
    type Key = Uuid;
    type Spec = Endpoint;
    type Msg = SupervisorMsg;

    /// State comes back from the store, not from the failed actor.
    async fn reload(&self, id: Uuid) -> Result<Option<Endpoint>, String> {
        match self.ctx.store.get_endpoint(id).await {
            Ok(endpoint) => Ok(endpoint.filter(|e| e.enabled && self.runs(id))),
            Err(e) => {
                StoreFailed::new(StoreOp::GetEndpoint, &e)
                    .endpoint(id)
                    .emit();
                Err(e.to_string())
            }
        }
    }

    async fn spawn(
        &self,
        supervisor: ActorCell,
        _id: Uuid,
        endpoint: Endpoint,
    ) -> Result<ActorId, SpawnErr> {
        let handle = self.ctx.directory.upsert(&endpoint);
        let args = EndpointArgs {
            handle,
            endpoint,
            ctx: self.ctx.clone(),
        };
        let (child, _) = Actor::spawn_linked(None, EndpointActor, args, supervisor).await?;
        Ok(child.get_id())
    }

    fn vacate(&self, id: Uuid) {
        if let Some(handle) = self.ctx.directory.by_id.pin().get(&id) {
            handle.actor.set(None);
        }
    }
}

impl Endpoints {
    /// This node runs the endpoint's actor (always, outside cluster mode).
    fn runs(&self, id: Uuid) -> bool {
        self.owned.as_ref().is_none_or(|owned| owned.contains(&id))
    }

    /// Empties the endpoint's slot and waits for its actor to stop.
    async fn stop(&self, id: Uuid) {
        let Some(handle) = self.ctx.directory.by_id.pin().get(&id).cloned() else {
            return;
        };
        let actor = handle.actor.get();
        handle.actor.set(None);
        if let Some(actor) = actor {
            let _ = actor
                .stop_and_wait(None, Some(Duration::from_secs(10)))
                .await;
        }
    }
}

pub type WebhookSupervisor = SupervisorActor<Endpoints>;

impl SupervisingActor for Endpoints {
    type Args = SupervisorArgs;

    async fn boot(
        myself: &ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<Supervisor<Endpoints>, ActorProcessingErr> {
        let endpoints = args.ctx.store.all_endpoints().await?;
        let kind = Endpoints {
            ctx: args.ctx,
            owned: args.cluster.then(HashSet::new),
        };
        let mut state = Supervisor::new(kind, args.restart, SupervisorMsg::Retry);
        for endpoint in endpoints {
            if endpoint.enabled && state.kind.runs(endpoint.id) {
                state.start(myself, endpoint.id, endpoint).await;
            } else {
                state.kind.ctx.directory.upsert(&endpoint);
            }
        }
        Ok(state)
    }

    async fn handle(
        state: &mut Supervisor<Endpoints>,
        myself: &ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
    ) {
        match msg {
            SupervisorMsg::Upsert(endpoint) => {
                let handle = state.kind.ctx.directory.upsert(&endpoint);
                match handle.actor.get() {
                    Some(actor) => {
                        let _ = actor.cast(EndpointMsg::Update(endpoint));
                    }
                    // Enabled again, or changed while failing: a fresh start and budget.
                    None if endpoint.enabled && state.kind.runs(endpoint.id) => {
                        state.forget(endpoint.id);
                        state.start(myself, endpoint.id, *endpoint).await;
                    }
                    None => {}
                }
            }
            SupervisorMsg::Remove(id, reply) => {
                state.forget(id);
                state.kind.stop(id).await;
                let _ = reply.send(());
            }
            SupervisorMsg::StopAll(reply) => {
                for id in state.stop_all() {
                    state.kind.stop(id).await;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::Retry(id) => state.on_retry(myself, id).await,
            SupervisorMsg::OwnAgain(id) if !state.kind.runs(id) => {}
            SupervisorMsg::Own(id) | SupervisorMsg::OwnAgain(id) => {
                if let Some(owned) = &mut state.kind.owned {
                    owned.insert(id);
                }
                let running = state
                    .kind
                    .ctx
                    .directory
                    .by_id
                    .pin()
                    .get(&id)
                    .is_some_and(|h| h.actor.get().is_some());
                if !running {
                    state.forget(id);
                    match state.kind.reload(id).await {
                        Ok(Some(endpoint)) => state.start(myself, id, endpoint).await,
                        // Deleted or disabled: the change feed tells the directory.
                        Ok(None) => {}
                        Err(_) => {
                            myself.send_after(Duration::from_secs(1), move || {
                                SupervisorMsg::OwnAgain(id)
                            });
                        }
                    };
                }
            }
            SupervisorMsg::Disown(id, reply) => {
                if let Some(owned) = &mut state.kind.owned {
                    owned.remove(&id);
                }
                state.forget(id);
                state.kind.stop(id).await;
                let _ = reply.send(());
            }
        }
    }
}

/// Test hook: makes an endpoint's actor panic.
#[doc(hidden)]
pub fn crash_endpoint(directory: &super::WebhookDirectory, id: Uuid) -> bool {
    let actor = directory.by_id.pin().get(&id).and_then(|h| h.actor.get());
    actor.is_some_and(|a| a.cast(EndpointMsg::Crash).is_ok())
}

/// Test hook: the endpoint's live actor, so a test can tell a successor apart.
#[doc(hidden)]
pub fn endpoint_actor(directory: &super::WebhookDirectory, id: Uuid) -> Option<ActorId> {
    directory.by_id.pin().get(&id)?.actor.live_id()
}
