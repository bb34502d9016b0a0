//! The clock of a periodic background task (expiry, lease loop, feed tail):
//! one tick per period, late ticks delayed rather than bunched, and an end
//! when the task's stop signal changes.

use std::time::Duration;

use tokio::{
    sync::watch,
    time::{Interval, MissedTickBehavior},
};

pub struct Ticker {
    interval: Interval,
    stop: watch::Receiver<bool>,
}

impl Ticker {
    pub fn new(every: Duration, stop: watch::Receiver<bool>) -> Self {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { interval, stop }
    }

    /// Waits for the next period: `false` once the task is asked to stop.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = self.stop.changed() => false,
        }
    }
}
