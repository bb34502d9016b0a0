//! What supervisors share: a restart budget, at most N restarts of a child in
//! any sliding minute, so a child that fails at once on every start cannot spin.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

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
