//! The webhook supervisor: one endpoint actor per enabled endpoint, started at
//! boot and following API changes. A failed actor is restarted with its endpoint
//! and pending deliveries reloaded from the store, at most
//! `MAX_RESTARTS_PER_MINUTE` times a minute; past that the endpoint is left
//! failing (deliveries wait in the outbox) and `relurl_webhook_endpoints_failing`
//! says so.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use uuid::Uuid;

use super::endpoint::{EndpointActor, EndpointArgs, EndpointContext, EndpointMsg};
use crate::metrics::events::{ActorGaveUp, ActorRestarted, EndpointReloadFailed, Supervised};
use crate::{domain::Endpoint, supervision::RestartBudget};

const MAX_RESTARTS_PER_MINUTE: usize = 5;

pub enum SupervisorMsg {
    /// An endpoint was created or changed.
    Upsert(Box<Endpoint>),
    /// An endpoint is being deleted: stop its actor, then answer.
    Remove(Uuid, RpcReplyPort<()>),
    /// Stop every endpoint actor (shutdown), then answer.
    StopAll(RpcReplyPort<()>),
}

pub struct WebhookSupervisor;

pub struct SupervisorState {
    ctx: Arc<EndpointContext>,
    children: HashMap<ActorId, Uuid>,
    restarts: HashMap<Uuid, RestartBudget>,
    stopping: bool,
}

impl WebhookSupervisor {
    async fn spawn_endpoint(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        endpoint: Endpoint,
    ) -> Result<(), ActorProcessingErr> {
        let handle = state.ctx.directory.upsert(&endpoint);
        let id = endpoint.id;
        let (child, _) = Actor::spawn_linked(
            None,
            EndpointActor,
            EndpointArgs {
                handle,
                endpoint,
                ctx: state.ctx.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        state.children.insert(child.get_id(), id);
        Ok(())
    }

    async fn stop_child(state: &mut SupervisorState, id: Uuid) {
        let child = state
            .children
            .iter()
            .find(|(_, e)| **e == id)
            .map(|(actor, _)| *actor);
        if let Some(actor) = child {
            state.children.remove(&actor);
        }
        let Some(handle) = state.ctx.directory.by_id.pin().get(&id).cloned() else {
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

impl Actor for WebhookSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<EndpointContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        ctx: Arc<EndpointContext>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let endpoints = ctx.store.all_endpoints().await?;
        let mut state = SupervisorState {
            ctx,
            children: HashMap::new(),
            restarts: HashMap::new(),
            stopping: false,
        };
        for endpoint in endpoints {
            if endpoint.enabled {
                Self::spawn_endpoint(&myself, &mut state, endpoint).await?;
            } else {
                state.ctx.directory.upsert(&endpoint);
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Upsert(endpoint) => {
                let handle = state.ctx.directory.upsert(&endpoint);
                match handle.actor.get() {
                    Some(actor) => {
                        let _ = actor.cast(EndpointMsg::Update(endpoint));
                    }
                    None if endpoint.enabled => {
                        state.restarts.remove(&endpoint.id);
                        Self::spawn_endpoint(&myself, state, *endpoint).await?;
                    }
                    None => {}
                }
            }
            SupervisorMsg::Remove(id, reply) => {
                Self::stop_child(state, id).await;
                let _ = reply.send(());
            }
            SupervisorMsg::StopAll(reply) => {
                state.stopping = true;
                let ids: Vec<Uuid> = state.children.values().copied().collect();
                for id in ids {
                    Self::stop_child(state, id).await;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            // A clean stop is ours (delete, shutdown): nothing to do.
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.children.remove(&cell.get_id());
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(id) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        if state.stopping {
            return Ok(());
        }
        let handle = state.ctx.directory.by_id.pin().get(&id).cloned();
        if let Some(handle) = &handle {
            handle.actor.set(None);
        }
        let budget = state
            .restarts
            .entry(id)
            .or_insert_with(|| RestartBudget::new(MAX_RESTARTS_PER_MINUTE));
        if !budget.try_restart(Instant::now()) {
            ActorGaveUp {
                actor: Supervised::Endpoint(id),
                reason: &reason,
            }
            .emit();
            return Ok(());
        }
        ActorRestarted {
            actor: Supervised::Endpoint(id),
            reason: &reason,
        }
        .emit();
        // State comes back from the store, not from the failed actor.
        match state.ctx.store.get_endpoint(id).await {
            Ok(Some(endpoint)) if endpoint.enabled => {
                Self::spawn_endpoint(&myself, state, endpoint).await?
            }
            Ok(_) => {}
            Err(e) => {
                EndpointReloadFailed {
                    endpoint: id,
                    error: &e,
                }
                .emit();
            }
        }
        Ok(())
    }
}

/// Test hook: makes an endpoint's actor panic.
#[doc(hidden)]
pub fn crash_endpoint(directory: &super::WebhookDirectory, id: Uuid) -> bool {
    let Some(handle) = directory.by_id.pin().get(&id).cloned() else {
        return false;
    };
    handle
        .actor
        .get()
        .is_some_and(|a| a.cast(EndpointMsg::Crash).is_ok())
}
