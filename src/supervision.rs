//! One supervisor shape for every child kind (click shards, endpoint actors).
//! A supervising actor keeps a [`Supervisor`] in its state and hands it every
//! supervision event and retry message; the [`ChildKind`] says how to start one
//! child and how senders stop finding it. The rules, the same for every kind:
//!
//! - a child we stopped (removed with [`Supervisor::forget`], or any child
//!   during shutdown) stays stopped; a child that failed or stopped on its own
//!   is restarted;
//! - each child gets at most `max_restarts` restarts in any `window`. Past that
//!   it is down and counted as failing, and is retried once the window frees a
//!   restart; it stops failing when it comes back or is removed;
//! - a restarts counter and a failing gauge per kind.
//!
//! [`SupervisorActor`] is the one supervising actor: a kind says how it boots
//! and what its own messages do ([`SupervisingActor`]). Also here:
//! [`ActorSlot`], where senders find a child's current `ActorRef`.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt::Display,
    future::Future,
    hash::Hash,
    marker::PhantomData,
    sync::RwLock,
    time::Duration,
};

use metrics::Gauge;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, Message, MessagingErr,
    SpawnErr, SupervisionEvent,
};
use tokio::time::Instant;

use crate::metrics::events::{ChildDown, ChildRestarted, Supervised};

/// The current actor of a supervised child: empty while it is down, filled by
/// its successor's `pre_start`. Senders read it; only the lifecycle writes it.
pub struct ActorSlot<M>(RwLock<Option<ActorRef<M>>>);

impl<M: Message> ActorSlot<M> {
    pub fn empty() -> Self {
        Self(RwLock::new(None))
    }

    pub fn get(&self) -> Option<ActorRef<M>> {
        // The guarded value is a plain Option: a poisoned lock holds no broken state.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set(&self, actor: Option<ActorRef<M>>) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = actor;
    }

    /// From a child's `pre_start`: senders find `myself` from now on, and its
    /// first message (catching up on what queued while the slot was empty) is
    /// on its way.
    pub fn occupy(&self, myself: &ActorRef<M>, first: M) -> Result<(), MessagingErr<M>> {
        self.set(Some(myself.clone()));
        myself.cast(first)
    }

    /// The actor in the slot, if it is starting or running (not dying).
    pub fn live_id(&self) -> Option<ActorId> {
        self.get()
            .filter(|a| {
                matches!(
                    a.get_status(),
                    ActorStatus::Starting | ActorStatus::Running | ActorStatus::Upgrading
                )
            })
            .map(|a| a.get_id())
    }
}

/// At most `max_restarts` restarts of one child in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
}

impl RestartPolicy {
    pub const fn per_minute(max_restarts: usize) -> Self {
        Self {
            max_restarts,
            window: Duration::from_secs(60),
        }
    }
}

tokio::task_local! {
    static POLICY_OVERRIDE: RestartPolicy;
}

/// Test hook: servers started inside `fut` restart every child kind under
/// `policy` (a short window, so tests never wait a minute).
#[doc(hidden)]
pub async fn with_restart_policy<F: Future>(policy: RestartPolicy, fut: F) -> F::Output {
    POLICY_OVERRIDE.scope(policy, fut).await
}

/// `default`, unless a test set another policy around this start.
pub fn restart_policy(default: RestartPolicy) -> RestartPolicy {
    POLICY_OVERRIDE.try_with(|p| *p).unwrap_or(default)
}

/// Restarts spent in the sliding window, so a child that fails at once on
/// every start cannot spin. Pure: callers pass `now`.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy: RestartPolicy {
                // A budget of zero would never let a retry through.
                max_restarts: policy.max_restarts.max(1),
                ..policy
            },
            recent: VecDeque::new(),
        }
    }

    /// Spends one restart at `now`; when the window's budget is gone, says how
    /// long until one is free again.
    pub fn try_restart(&mut self, now: Instant) -> Result<(), Duration> {
        let window = self.policy.window;
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts {
            let oldest = self.recent.front().copied().unwrap_or(now);
            return Err((oldest + window).saturating_duration_since(now));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

/// What differs between child kinds: how one child starts and is found.
pub trait ChildKind: Send + Sync + 'static {
    /// Names the kind in logs and picks its metrics.
    const KIND: Supervised;
    /// Which child: a shard index, an endpoint id.
    type Key: Copy + Eq + Hash + Display + Send + Sync + 'static;
    /// What a child starts from (an endpoint row; nothing for a shard).
    type Spec: Send;
    /// The supervising actor's message.
    type Msg: Message;

    /// What a restarted child starts from; `None`: it is not wanted any more.
    fn reload(
        &self,
        key: Self::Key,
    ) -> impl Future<Output = Result<Option<Self::Spec>, String>> + Send;

    /// Starts the child, linked to `supervisor`.
    fn spawn(
        &self,
        supervisor: ActorCell,
        key: Self::Key,
        spec: Self::Spec,
    ) -> impl Future<Output = Result<ActorId, SpawnErr>> + Send;

    /// The child is down: senders must stop finding its actor.
    fn vacate(&self, key: Self::Key);
}

/// The bookkeeping of one supervising actor (see the module doc).
pub struct Supervisor<C: ChildKind> {
    pub kind: C,
    policy: RestartPolicy,
    /// The supervising actor's message asking to retry a down child.
    retry: fn(C::Key) -> C::Msg,
    children: HashMap<ActorId, C::Key>,
    /// One per child that restarted recently; bounded by the children.
    budgets: HashMap<C::Key, RestartBudget>,
    failing: HashSet<C::Key>,
    stopping: bool,
    failing_gauge: Gauge,
}

impl<C: ChildKind> Supervisor<C> {
    pub fn new(kind: C, policy: RestartPolicy, retry: fn(C::Key) -> C::Msg) -> Self {
        Self {
            kind,
            policy,
            retry,
            children: HashMap::new(),
            budgets: HashMap::new(),
            failing: HashSet::new(),
            stopping: false,
            failing_gauge: C::KIND.failing_gauge(),
        }
    }

    /// Starts the child of `key` (at boot, or because the API asked). One that
    /// cannot start is failing and retried after the window.
    pub async fn start(&mut self, myself: &ActorRef<C::Msg>, key: C::Key, spec: C::Spec) {
        match self.kind.spawn(myself.get_cell(), key, spec).await {
            Ok(child) => {
                self.children.insert(child, key);
                self.set_failing(key, false);
            }
            Err(e) => self.fail(myself, key, &e, self.policy.window),
        }
    }

    /// We stop (or stopped) this child ourselves: it must not come back, and
    /// it no longer counts as failing.
    pub fn forget(&mut self, key: C::Key) {
        self.children.retain(|_, k| *k != key);
        self.budgets.remove(&key);
        self.set_failing(key, false);
    }

    /// Shutdown: children that stop from now on stay stopped. Returns the
    /// children still running.
    pub fn stop_all(&mut self) -> Vec<C::Key> {
        self.stopping = true;
        self.children.values().copied().collect()
    }

    /// A child terminated or failed: restart it unless we stopped it.
    pub async fn on_event(&mut self, myself: &ActorRef<C::Msg>, event: SupervisionEvent) {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped on its own".into()))
            }
            _ => return,
        };
        // Not in the map: we forgot it before stopping it.
        let Some(key) = self.children.remove(&cell.get_id()) else {
            return;
        };
        self.kind.vacate(key);
        if !self.stopping {
            self.restart(myself, key, &reason).await;
        }
    }

    /// A retry timer fired: bring the child back if it is still down.
    pub async fn on_retry(&mut self, myself: &ActorRef<C::Msg>, key: C::Key) {
        if !self.stopping && self.failing.contains(&key) {
            self.restart(myself, key, "retry after the restart window")
                .await;
        }
    }

    async fn restart(&mut self, myself: &ActorRef<C::Msg>, key: C::Key, reason: &str) {
        let policy = self.policy;
        let budget = self
            .budgets
            .entry(key)
            .or_insert_with(|| RestartBudget::new(policy));
        if let Err(wait) = budget.try_restart(Instant::now()) {
            let reason = format!("failed too often; last: {reason}");
            self.fail(myself, key, &reason, wait);
            return;
        }
        ChildRestarted {
            kind: C::KIND,
            child: &key,
            reason,
        }
        .emit();
        match self.kind.reload(key).await {
            Ok(Some(spec)) => self.start(myself, key, spec).await,
            // Deleted or disabled meanwhile: nothing to bring back.
            Ok(None) => self.forget(key),
            Err(e) => self.fail(myself, key, &e, policy.window),
        }
    }

    fn fail(
        &mut self,
        myself: &ActorRef<C::Msg>,
        key: C::Key,
        reason: &dyn Display,
        retry_in: Duration,
    ) {
        ChildDown {
            kind: C::KIND,
            child: &key,
            reason,
            retry_in,
        }
        .emit();
        self.set_failing(key, true);
        let retry = self.retry;
        myself.send_after(retry_in, move || retry(key));
    }

    fn set_failing(&mut self, key: C::Key, failing: bool) {
        if failing && self.failing.insert(key) {
            self.failing_gauge.increment(1.0);
        } else if !failing && self.failing.remove(&key) {
            self.failing_gauge.decrement(1.0);
        }
    }
}

/// What a supervising actor adds to its child kind: how it boots (builds its
/// [`Supervisor`] and starts the first children) and what its own messages do.
pub trait SupervisingActor: ChildKind + Sized {
    type Args: Send + 'static;

    fn boot(
        myself: &ActorRef<Self::Msg>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Supervisor<Self>, ActorProcessingErr>> + Send;

    /// One message to the supervising actor, its retry message included
    /// (handed to [`Supervisor::on_retry`]).
    fn handle(
        state: &mut Supervisor<Self>,
        myself: &ActorRef<Self::Msg>,
        msg: Self::Msg,
    ) -> impl Future<Output = ()> + Send;
}

/// The supervising actor of kind `C`: its state is the [`Supervisor`], which
/// gets every supervision event.
pub struct SupervisorActor<C>(PhantomData<fn() -> C>);

impl<C> Default for SupervisorActor<C> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<C: SupervisingActor> Actor for SupervisorActor<C> {
    type Msg = C::Msg;
    type State = Supervisor<C>;
    type Arguments = C::Args;

    async fn pre_start(
        &self,
        myself: ActorRef<C::Msg>,
        args: C::Args,
    ) -> Result<Supervisor<C>, ActorProcessingErr> {
        C::boot(&myself, args).await
    }

    async fn handle(
        &self,
        myself: ActorRef<C::Msg>,
        msg: C::Msg,
        state: &mut Supervisor<C>,
    ) -> Result<(), ActorProcessingErr> {
        C::handle(state, &myself, msg).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<C::Msg>,
        event: SupervisionEvent,
        state: &mut Supervisor<C>,
    ) -> Result<(), ActorProcessingErr> {
        state.on_event(&myself, event).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
