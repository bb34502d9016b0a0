//! What supervisors share: a restart budget, at most N restarts of a child in
//! any sliding minute, so a child that fails at once on every start cannot spin;
//! and the slot where senders find a child's current `ActorRef`.

use std::{
    collections::VecDeque,
    sync::RwLock,
    time::{Duration, Instant},
};

use ractor::{ActorRef, Message};

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
}

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RestartBudget {
    max_per_minute: usize,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(max_per_minute: usize) -> Self {
        Self {
            max_per_minute,
            recent: VecDeque::new(),
        }
    }

    /// Spends one restart at `now`; `false` when the minute's budget is gone.
    pub fn try_restart(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_per_minute {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_restarts_a_minute() {
        let start = Instant::now();
        let mut budget = RestartBudget::new(2);
        assert!(budget.try_restart(start));
        assert!(budget.try_restart(start + Duration::from_secs(1)));
        assert!(!budget.try_restart(start + Duration::from_secs(2)));
        // A minute after the first restart, one slot is free again.
        assert!(budget.try_restart(start + Duration::from_secs(61)));
        assert!(!budget.try_restart(start + Duration::from_secs(61)));
    }
}
