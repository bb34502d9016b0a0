//! Cluster-wide fraud counting: the threshold holds over every node's clicks.
//!
//! Each node counts its clicks per (link, IP range, second) locally and, about
//! once a second, writes its running count of each second that changed as one
//! row `(code, ip_range, second, node) = n` with a TTL just past the window. A
//! node that wrote a key sums that key's rows over the window and decides.
//!
//! Plain rows, not counter increments: the row holds the node's whole count
//! for that second, so a retried or timed-out write is harmless (a counter
//! increment's timeout is ambiguous and may not be retried), and rows expire
//! (counter cells cannot carry a TTL, so a counter table only ever grows).

use std::{collections::HashMap, ops::RangeInclusive};

use crate::fraud::window::WindowKey;

/// One row to write: this node's clicks on `key` in `second` so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudCount {
    pub key: WindowKey,
    /// Unix seconds.
    pub second: i64,
    pub count: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    count: i64,
    dirty: bool,
}

/// This node's per-second counts inside the window, bounded by `cap` entries.
pub struct LocalCounts {
    entries: HashMap<(WindowKey, i64), Entry>,
    window_secs: i64,
    cap: usize,
    /// Seconds below this have left the window and are no longer counted.
    floor: i64,
    /// Clicks not counted because `cap` entries were in use.
    pub untracked: u64,
}

impl LocalCounts {
    pub fn new(window_secs: u64, cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            window_secs: i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX),
            cap,
            floor: i64::MIN,
            untracked: 0,
        }
    }

    /// Counts one click on `key` at unix second `second`.
    pub fn add(&mut self, key: WindowKey, second: i64) {
        if second < self.floor {
            return; // its row is final (and outside every window still checked)
        }
        let full = self.entries.len() >= self.cap;
        match self.entries.get_mut(&(key.clone(), second)) {
            Some(entry) => {
                entry.count += 1;
                entry.dirty = true;
            }
            None if full => self.untracked += 1,
            None => {
                let entry = Entry {
                    count: 1,
                    dirty: true,
                };
                self.entries.insert((key, second), entry);
            }
        }
    }

    /// The rows changed since the last flush; seconds that left the window at
    /// `now_sec` are dropped afterwards. A table past half its cap also drops
    /// every second before `now_sec` (their rows are written, and detection sums
    /// the table, not this copy), so a flood of new keys cannot fill it for the
    /// whole window and leave other links untracked; a click that arrives late
    /// for a dropped second is then not counted, rather than shrinking its row.
    pub fn flush(&mut self, now_sec: i64) -> Vec<FraudCount> {
        let mut rows: Vec<FraudCount> = self
            .entries
            .iter_mut()
            .filter(|(_, e)| e.dirty)
            .map(|((key, second), e)| {
                e.dirty = false;
                FraudCount {
                    key: key.clone(),
                    second: *second,
                    count: e.count,
                }
            })
            .collect();
        rows.sort_by(|a, b| (&*a.key.code, a.second).cmp(&(&*b.key.code, b.second)));
        let oldest_kept = if self.entries.len() > self.cap / 2 {
            now_sec
        } else {
            *window(now_sec, self.window_secs).start()
        };
        self.floor = self.floor.max(oldest_kept);
        let floor = self.floor;
        self.entries.retain(|(_, second), _| *second >= floor);
        rows
    }

    /// The write of `rows` failed: write them again at the next flush (also
    /// those the flush already dropped from this copy).
    pub fn unflush(&mut self, rows: &[FraudCount]) {
        for row in rows {
            let entry = self
                .entries
                .entry((row.key.clone(), row.second))
                .or_insert(Entry {
                    count: row.count,
                    dirty: true,
                });
            entry.dirty = true;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The `second` of a key's block row: `n` is the unix second the block ends.
/// Past every real second, so no window sums it.
pub const BLOCK_SECOND: i64 = i64::MAX;

/// The deadline in a key's block row, if there is one still ahead of `now_sec`.
pub fn blocked_until(rows: &[(i64, i64)], now_sec: i64) -> Option<u64> {
    rows.iter()
        .filter(|(second, until)| *second == BLOCK_SECOND && *until > now_sec)
        .map(|(_, until)| *until as u64)
        .max()
}

/// The seconds a window of `window_secs` ending at `now_sec` covers (the same
/// span the single-node detector counts).
pub fn window(now_sec: i64, window_secs: i64) -> RangeInclusive<i64> {
    now_sec - (window_secs.max(1) - 1)..=now_sec
}

/// Clicks in the window from the table's `(second, count)` rows of one key, all
/// nodes, and whether they pass `threshold` (more than it, as on one node).
pub fn decide(
    rows: impl IntoIterator<Item = (i64, i64)>,
    now_sec: i64,
    window_secs: i64,
    threshold: u32,
) -> (u64, bool) {
    let span = window(now_sec, window_secs);
    let total: u64 = rows
        .into_iter()
        .filter(|(second, _)| span.contains(second))
        .map(|(_, n)| n.max(0) as u64)
        .sum();
    (total, total > u64::from(threshold))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(code: &str) -> WindowKey {
        WindowKey {
            code: Arc::from(code),
            range: "10.0.0.0/24".parse().unwrap(),
        }
    }

    #[test]
    fn clicks_are_summed_per_second_and_rewritten_whole() {
        let mut local = LocalCounts::new(60, 100);
        for _ in 0..3 {
            local.add(key("a"), 100);
        }
        local.add(key("a"), 101);
        let rows = local.flush(101);
        let counts: Vec<(i64, i64)> = rows.iter().map(|r| (r.second, r.count)).collect();
        assert_eq!(counts, vec![(100, 3), (101, 1)]);
        assert!(local.flush(101).is_empty(), "nothing changed");
        local.add(key("a"), 101);
        let again = local.flush(102);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].second, again[0].count),
            (101, 2),
            "the running count"
        );
    }

    #[test]
    fn seconds_that_left_the_window_are_dropped_and_not_counted_again() {
        let mut local = LocalCounts::new(10, 100);
        local.add(key("a"), 100);
        local.flush(100);
        local.flush(110);
        assert!(local.is_empty());
        local.add(key("a"), 100);
        assert!(
            local.flush(110).is_empty(),
            "a late click cannot shrink the row"
        );
    }

    #[test]
    fn a_flood_of_new_keys_does_not_stop_counting_for_the_window() {
        let mut local = LocalCounts::new(60, 100);
        for i in 0..100 {
            local.add(key(&format!("flood{i}")), 100);
        }
        local.add(key("victim"), 100);
        assert_eq!(local.untracked, 1, "full within one second");
        assert_eq!(local.flush(101).len(), 100);
        // Written, and past half the cap: the earlier seconds leave this copy.
        assert!(local.is_empty());
        local.add(key("victim"), 101);
        assert_eq!(local.untracked, 1, "tracked again a second later");
        local.add(key("flood1"), 100);
        let rows = local.flush(101);
        let counts: Vec<(i64, i64)> = rows.iter().map(|r| (r.second, r.count)).collect();
        assert_eq!(counts, vec![(101, 1)], "a late click cannot shrink its row");
        // A failed write of dropped rows is still written again.
        let mut local = LocalCounts::new(60, 2);
        local.add(key("a"), 100);
        local.add(key("b"), 100);
        let rows = local.flush(101);
        assert!(local.is_empty());
        local.unflush(&rows);
        assert_eq!(local.flush(101).len(), 2);
    }

    #[test]
    fn a_failed_write_is_sent_again() {
        let mut local = LocalCounts::new(60, 100);
        local.add(key("a"), 100);
        let rows = local.flush(100);
        local.unflush(&rows);
        assert_eq!(local.flush(100), rows);
    }

    #[test]
    fn entries_are_capped() {
        let mut local = LocalCounts::new(60, 2);
        for second in 0..4 {
            local.add(key("a"), second);
        }
        local.add(key("a"), 1);
        assert_eq!(local.len(), 2);
        assert_eq!(local.untracked, 2);
    }

    #[test]
    fn the_decision_sums_every_node_inside_the_window_only() {
        // Three nodes, 40 clicks each in the window; 1000 clicks long before it.
        let rows = [
            (50, 1000),
            (91, 20),
            (91, 20),
            (91, 20),
            (100, 20),
            (100, 20),
            (100, 20),
        ];
        assert_eq!(
            decide(rows, 100, 10, 120),
            (120, false),
            "not more than the threshold"
        );
        assert_eq!(decide(rows, 100, 10, 119), (120, true));
        assert_eq!(
            decide(rows, 101, 10, 100),
            (60, false),
            "second 91 left the window"
        );
    }

    #[test]
    fn a_block_row_is_found_while_ahead_and_never_summed() {
        let rows = [(95, 150), (100, 100), (BLOCK_SECOND, 200)];
        assert_eq!(blocked_until(&rows, 100), Some(200));
        assert_eq!(blocked_until(&rows, 200), None, "it has ended");
        assert_eq!(decide(rows, 100, 10, 200), (250, true));
    }

    #[test]
    fn the_window_matches_the_single_node_span() {
        assert_eq!(window(100, 10), 91..=100);
        assert_eq!(window(100, 0), 100..=100);
    }
}
