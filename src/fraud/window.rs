//! Sliding-window counting per (link, IP range): pure logic, no clock of its own
//! (callers pass the click's time), so tests drive it directly.
//!
//! The windows live in a bounded S3-FIFO map (`quick_cache`): a key seen once
//! (a flood of new ranges or links) leaves before keys hit again, so filling
//! the table cannot switch detection off for anyone else, and a new key costs
//! O(1) amortised, never a sweep.

use std::{collections::VecDeque, sync::Arc};

use quick_cache::unsync::Cache;

use crate::net::Cidr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowKey {
    pub code: Arc<str>,
    pub range: Cidr,
}

#[derive(Debug, Default, Clone)]
struct Window {
    /// (second, clicks in that second), oldest first.
    buckets: VecDeque<(u64, u32)>,
    total: u32,
    /// Reported over the threshold; reported again only once the count has
    /// fallen back to it (a block ran out, the flood resumed).
    tripped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Counted,
    /// This click took the window past the threshold (reported once per flood).
    Tripped {
        clicks: u32,
    },
}

pub struct FraudWindows {
    windows: Cache<WindowKey, Window>,
    window_secs: u64,
    threshold: u32,
    /// Windows pushed out to make room, since the start.
    evicted: u64,
}

impl FraudWindows {
    pub fn new(window_secs: u64, threshold: u32, max_keys: usize) -> Self {
        Self {
            windows: Cache::new(max_keys.max(1)),
            window_secs: window_secs.max(1),
            threshold,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Windows evicted to stay within the cap, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Counts one click at `now_secs` (unix seconds).
    pub fn observe(&mut self, key: WindowKey, now_secs: u64) -> Observation {
        let before = self.windows.len();
        let (window_secs, threshold) = (self.window_secs, self.threshold);
        let Some(mut window) = self
            .windows
            .get_mut_or_insert_with(&key, || Ok::<_, ()>(Window::default()))
            .ok()
            .flatten()
        else {
            return Observation::Counted; // an item heavier than the cache: cannot happen
        };
        let fresh = window.total == 0 && window.buckets.is_empty();
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
        if window.total <= threshold {
            window.tripped = false;
        }
        match window.buckets.back_mut() {
            // Same second, or a click that arrived slightly out of order.
            Some((sec, n)) if *sec >= now_secs => *n += 1,
            _ => window.buckets.push_back((now_secs, 1)),
        }
        window.total += 1;
        let observation = if window.total > threshold && !window.tripped {
            window.tripped = true;
            Observation::Tripped {
                clicks: window.total,
            }
        } else {
            Observation::Counted
        };
        drop(window);
        if fresh && self.windows.len() <= before {
            self.evicted += 1;
        }
        observation
    }

    /// Drops every window of a link (it was re-enabled: a fresh start). A full
    /// pass, but only on an owner's re-enable, never per click.
    pub fn forget_code(&mut self, code: &str) {
        self.windows.retain(|k, _| &*k.code != code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Observation::{Counted, Tripped};

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
    fn a_flood_of_new_keys_from_one_link_does_not_stop_detection_on_another() {
        let mut w = FraudWindows::new(10, 50, 1_000);
        // One account clicks its own link from ever new ranges: far more
        // (link, range) pairs than the table holds, before and during an attack.
        let mut flood = (0u32..).map(|n| {
            let [_, a, b, c] = n.to_be_bytes();
            key("own", &format!("{a}.{b}.{c}.0/24"))
        });
        for key in flood.by_ref().take(5_000) {
            assert_eq!(w.observe(key, 100), Counted);
        }
        assert!(w.len() <= 1_000);
        assert!(w.evicted() >= 4_000, "evicted {}", w.evicted());
        // The attack on another link is counted whole and trips at the threshold.
        for click in 1..=51 {
            for key in flood.by_ref().take(20) {
                w.observe(key, 101);
            }
            let seen = click_a(&mut w, 101);
            let expected = if click == 51 {
                Tripped { clicks: 51 }
            } else {
                Counted
            };
            assert_eq!(seen, expected, "click {click}");
        }
        assert!(w.len() <= 1_000);
    }

    #[test]
    fn trips_again_once_a_flood_resumes_after_falling_back() {
        let mut w = FraudWindows::new(10, 2, 100);
        for _ in 0..2 {
            click_a(&mut w, 100);
        }
        assert_eq!(click_a(&mut w, 100), Tripped { clicks: 3 });
        assert_eq!(click_a(&mut w, 105), Counted, "still the same flood");
        // Blocked for a while: no clicks reach the window, which empties.
        for _ in 0..2 {
            assert_eq!(click_a(&mut w, 200), Counted);
        }
        assert_eq!(click_a(&mut w, 200), Tripped { clicks: 3 });
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
