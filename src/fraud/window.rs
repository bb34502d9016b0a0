//! Sliding-window counting per (link, IP range): pure logic, no clock of its own
//! (callers pass the click's time), so tests drive it directly.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use crate::net::Cidr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowKey {
    pub code: Arc<str>,
    pub range: Cidr,
}

#[derive(Debug, Default)]
struct Window {
    /// (second, clicks in that second), oldest first.
    buckets: VecDeque<(u64, u32)>,
    total: u32,
    last_seen: u64,
    tripped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Counted,
    /// This click took the window past the threshold (reported once per window).
    Tripped {
        clicks: u32,
    },
    /// Too many windows tracked; this one was not.
    Untracked,
}

pub struct FraudWindows {
    windows: HashMap<WindowKey, Window>,
    window_secs: u64,
    threshold: u32,
    max_keys: usize,
    last_sweep: u64,
}

impl FraudWindows {
    pub fn new(window_secs: u64, threshold: u32, max_keys: usize) -> Self {
        Self {
            windows: HashMap::new(),
            window_secs: window_secs.max(1),
            threshold,
            max_keys,
            last_sweep: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Counts one click at `now_secs` (unix seconds).
    pub fn observe(&mut self, key: WindowKey, now_secs: u64) -> Observation {
        if !self.windows.contains_key(&key) && self.windows.len() >= self.max_keys {
            self.evict_idle(now_secs);
            if self.windows.len() >= self.max_keys {
                return Observation::Untracked;
            }
        }
        let window_secs = self.window_secs;
        let window = self.windows.entry(key).or_default();
        let horizon = now_secs.saturating_sub(window_secs - 1);
        while window
            .buckets
            .front()
            .is_some_and(|(sec, _)| *sec < horizon)
        {
            if let Some((_, n)) = window.buckets.pop_front() {
                window.total -= n;
            }
        }
        match window.buckets.back_mut() {
            // Same second, or a click that arrived slightly out of order.
            Some((sec, n)) if *sec >= now_secs => *n += 1,
            _ => window.buckets.push_back((now_secs, 1)),
        }
        window.total += 1;
        window.last_seen = window.last_seen.max(now_secs);
        if window.total > self.threshold && !window.tripped {
            window.tripped = true;
            return Observation::Tripped {
                clicks: window.total,
            };
        }
        Observation::Counted
    }

    /// Drops every window of a link (it was re-enabled: a fresh start).
    pub fn forget_code(&mut self, code: &str) {
        self.windows.retain(|k, _| &*k.code != code);
    }

    /// Drops windows with no click in the last window; returns how many. Runs at
    /// most once per window length unless the cap forces it.
    pub fn sweep(&mut self, now_secs: u64) -> usize {
        if now_secs < self.last_sweep + self.window_secs {
            return 0;
        }
        self.evict_idle(now_secs)
    }

    fn evict_idle(&mut self, now_secs: u64) -> usize {
        self.last_sweep = now_secs;
        let before = self.windows.len();
        let window_secs = self.window_secs;
        self.windows
            .retain(|_, w| w.last_seen + window_secs > now_secs);
        before - self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Observation::{Counted, Tripped, Untracked};

    fn key(code: &str, range: &str) -> WindowKey {
        WindowKey {
            code: Arc::from(code),
            range: range.parse().unwrap(),
        }
    }

    /// A click on link "a" from 10.0.0.0/24 at second `at`.
    fn click_a(w: &mut FraudWindows, at: u64) -> Observation {
        w.observe(key("a", "10.0.0.0/24"), at)
    }

    #[test]
    fn trips_once_past_threshold() {
        let mut w = FraudWindows::new(10, 5, 100);
        for _ in 0..5 {
            assert_eq!(click_a(&mut w, 100), Counted);
        }
        assert_eq!(click_a(&mut w, 101), Tripped { clicks: 6 });
        assert_eq!(click_a(&mut w, 101), Counted);
    }

    #[test]
    fn old_clicks_slide_out() {
        let mut w = FraudWindows::new(10, 5, 100);
        for s in 0..5 {
            click_a(&mut w, 100 + s);
        }
        // At 110 the click of second 100 has left the 10 s window: 4 + 1.
        assert_eq!(click_a(&mut w, 110), Counted);
        // At 113 only seconds 104 and 110 remain: 2 + 1, and three more trip it.
        for _ in 0..3 {
            assert_eq!(click_a(&mut w, 113), Counted);
        }
        assert_eq!(click_a(&mut w, 113), Tripped { clicks: 6 });
    }

    #[test]
    fn keys_are_independent() {
        let mut w = FraudWindows::new(10, 2, 100);
        let (a, b) = ("10.0.0.0/24", "10.0.1.0/24");
        for (code, range) in [("a", a), ("a", b), ("b", a), ("a", a)] {
            w.observe(key(code, range), 1);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(click_a(&mut w, 1), Tripped { clicks: 3 });
    }

    #[test]
    fn capped_and_swept() {
        let mut w = FraudWindows::new(10, 100, 2);
        click_a(&mut w, 1);
        w.observe(key("b", "10.0.0.0/24"), 1);
        assert_eq!(w.observe(key("c", "10.0.0.0/24"), 2), Untracked);
        // Once idle for a window, old keys make room.
        assert_eq!(w.observe(key("c", "10.0.0.0/24"), 20), Counted);
        assert_eq!(w.len(), 1);
        assert_eq!(w.sweep(40), 1);
        assert!(w.is_empty());
    }

    #[test]
    fn forgetting_a_code_restarts_its_windows() {
        let mut w = FraudWindows::new(10, 1, 100);
        click_a(&mut w, 1);
        assert!(matches!(click_a(&mut w, 1), Tripped { .. }));
        w.forget_code("a");
        assert_eq!(click_a(&mut w, 1), Counted);
    }
}
