//! The restart budget (pure), and the supervision rules driven through a
//! one-child kind whose child panics or stops when told.

use std::sync::Arc;

use super::*;

const TWO_A_MINUTE: RestartPolicy = RestartPolicy::per_minute(2);

#[test]
fn at_most_n_restarts_in_the_window_then_a_wait_until_one_frees() {
    let start = Instant::now();
    let mut budget = RestartBudget::new(TWO_A_MINUTE);
    assert_eq!(budget.try_restart(start), Ok(()));
    assert_eq!(budget.try_restart(start + Duration::from_secs(1)), Ok(()));
    assert_eq!(
        budget.try_restart(start + Duration::from_secs(2)),
        Err(Duration::from_secs(58))
    );
    // A window after the first restart, one restart is free again.
    assert_eq!(budget.try_restart(start + Duration::from_secs(60)), Ok(()));
    assert_eq!(
        budget.try_restart(start + Duration::from_secs(60)),
        Err(Duration::from_secs(1))
    );
}

#[test]
fn a_zero_budget_still_lets_a_retry_through() {
    let start = Instant::now();
    let mut budget = RestartBudget::new(RestartPolicy::per_minute(0));
    assert_eq!(budget.try_restart(start), Ok(()));
    assert!(budget.try_restart(start).is_err());
}

/// A child kind for the rules themselves: one child that panics or stops when told.
mod rules {
    use std::sync::Arc;

    use ractor::{Actor, ActorProcessingErr, RpcReplyPort};

    use super::*;

    pub enum ChildMsg {
        Panic,
        Stop,
    }

    struct Child;

    impl Actor for Child {
        type Msg = ChildMsg;
        type State = ();
        type Arguments = Arc<ActorSlot<ChildMsg>>;

        async fn pre_start(
            &self,
            myself: ActorRef<ChildMsg>,
            slot: Arc<ActorSlot<ChildMsg>>,
        ) -> Result<(), ActorProcessingErr> {
            slot.set(Some(myself));
            Ok(())
        }

        async fn handle(
            &self,
            myself: ActorRef<ChildMsg>,
            msg: ChildMsg,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                ChildMsg::Panic => panic!("test child asked to panic"),
                ChildMsg::Stop => myself.stop(None),
            }
            Ok(())
        }
    }

    pub struct One(pub Arc<ActorSlot<ChildMsg>>);

    impl ChildKind for One {
        const KIND: crate::metrics::events::Supervised =
            crate::metrics::events::Supervised::ClickShard;
        type Key = usize;
        type Spec = ();
        type Msg = SupMsg;

        async fn reload(&self, _: usize) -> Result<Option<()>, String> {
            Ok(Some(()))
        }

        async fn spawn(&self, sup: ActorCell, _: usize, (): ()) -> Result<ActorId, SpawnErr> {
            let (child, _) = Actor::spawn_linked(None, Child, self.0.clone(), sup).await?;
            Ok(child.get_id())
        }

        fn vacate(&self, _: usize) {
            self.0.set(None);
        }
    }

    pub enum SupMsg {
        Retry(usize),
        /// Forget the child, then stop it (the API deleting it).
        Remove(RpcReplyPort<()>),
        Failing(RpcReplyPort<bool>),
    }

    pub type Sup = SupervisorActor<One>;

    impl SupervisingActor for One {
        type Args = (Arc<ActorSlot<ChildMsg>>, RestartPolicy);

        async fn boot(
            myself: &ActorRef<SupMsg>,
            (slot, policy): Self::Args,
        ) -> Result<Supervisor<One>, ActorProcessingErr> {
            let mut state = Supervisor::new(One(slot), policy, SupMsg::Retry);
            state.start(myself, 0, ()).await;
            Ok(state)
        }

        async fn handle(state: &mut Supervisor<One>, myself: &ActorRef<SupMsg>, msg: SupMsg) {
            match msg {
                SupMsg::Retry(key) => state.on_retry(myself, key).await,
                SupMsg::Remove(reply) => {
                    state.forget(0);
                    if let Some(child) = state.kind.0.get() {
                        child.stop(None);
                    }
                    let _ = reply.send(());
                }
                SupMsg::Failing(reply) => {
                    let _ = reply.send(state.failing.contains(&0));
                }
            }
        }
    }
}

/// Waits for `check` to hold; gives up after 10 s.
async fn until(check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn one_rule_for_failed_self_stopped_out_of_budget_and_removed_children() {
    use rules::{ChildMsg, Sup, SupMsg};
    let shared = Arc::new(ActorSlot::empty());
    let slot = &*shared;
    let policy = RestartPolicy {
        max_restarts: 2,
        window: Duration::from_secs(2),
    };
    let (sup, _) = ractor::Actor::spawn(None, Sup::default(), (shared.clone(), policy))
        .await
        .expect("supervisor starts");
    let failing = || async { ractor::call!(sup, SupMsg::Failing).expect("answers") };
    let first = slot.live_id().expect("child started");
    let tell = |msg| slot.get().expect("child").cast(msg).expect("cast");
    let replaced = |old| move || slot.live_id().is_some_and(|id| id != old);

    // Stopped on its own: restarted, like a failure.
    tell(ChildMsg::Stop);
    until(replaced(first)).await;
    let second = slot.live_id().expect("restarted");
    tell(ChildMsg::Panic);
    until(replaced(second)).await;

    // Third in the window: down and failing until the window frees a restart.
    tell(ChildMsg::Panic);
    until(|| slot.get().is_none()).await;
    assert!(failing().await);
    until(|| slot.live_id().is_some()).await;
    assert!(!failing().await, "back after the window");

    // Stopped by us: stays stopped.
    ractor::call!(sup, SupMsg::Remove).expect("answers");
    until(|| slot.live_id().is_none()).await;
    assert!(!failing().await);
    sup.stop(None);
}
