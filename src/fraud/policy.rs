//! What happens once a range floods a link, as pure code: which action the
//! link's policy and grace period call for ([`decide`]), deadlines that expire
//! in the order they were set ([`Deadlines`]), and the blocked ranges the
//! click shards consult before storing a click ([`Blocklist`]).
//!
//! Times are unix seconds passed in by the caller.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    net::IpAddr,
    sync::Arc,
};

use crate::{domain::FraudAction, net};

use super::window::WindowKey;

/// The action for a range over the threshold on a link whose policy is
/// `policy` (already resolved against the server default). A link re-enabled
/// less than its grace period ago is not disabled again: the range is blocked.
pub fn decide(policy: FraudAction, grace_until: Option<u64>, now_secs: u64) -> FraudAction {
    let in_grace = grace_until.is_some_and(|until| now_secs < until);
    match policy {
        FraudAction::DisableLink if !in_grace => FraudAction::DisableLink,
        _ => FraudAction::BlockRange,
    }
}

/// Keys with a deadline, at most `cap` of them. Each kind of deadline is set
/// for one fixed duration, so setting order is expiry order: the oldest go
/// first, in O(1) amortised, whether expired or pushed out by the cap.
pub struct Deadlines<K> {
    until: HashMap<K, u64>,
    /// (key, deadline) in setting order; entries a later deadline replaced are
    /// skipped when they reach the front.
    order: VecDeque<(K, u64)>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Deadlines<K> {
    pub fn new(cap: usize) -> Self {
        Self {
            until: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// The deadline of `key` if it is still ahead at `now_secs`.
    pub fn active(&self, key: &K, now_secs: u64) -> Option<u64> {
        self.until
            .get(key)
            .copied()
            .filter(|until| *until > now_secs)
    }

    /// Sets `key` until `until` (an earlier deadline never shortens a later
    /// one); returns the keys dropped to make room or because they expired.
    pub fn set(&mut self, key: K, until: u64, now_secs: u64) -> Vec<K> {
        if self.until.get(&key).is_none_or(|old| *old < until) {
            self.until.insert(key.clone(), until);
            self.order.push_back((key, until));
        }
        let mut dropped = Vec::new();
        while let Some((key, until)) = self.order.front() {
            let stale = self.until.get(key) != Some(until);
            let over = self.until.len() > self.cap || self.order.len() > 2 * self.cap;
            if !(stale || over || *until <= now_secs) {
                break;
            }
            if let Some((key, _)) = self.order.pop_front()
                && !stale
            {
                self.until.remove(&key);
                dropped.push(key);
            }
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

/// Ranges blocked per link, until a unix second: written by the detector only,
/// read lock-free by every click shard.
pub struct Blocklist {
    blocked: papaya::HashMap<WindowKey, u64>,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl Blocklist {
    pub fn new(ipv4_prefix: u8, ipv6_prefix: u8) -> Self {
        Self {
            blocked: papaya::HashMap::new(),
            ipv4_prefix,
            ipv6_prefix,
        }
    }

    /// Whether a click on `code` from `ip` at `now_secs` is to be dropped.
    pub fn blocks(&self, code: &Arc<str>, ip: IpAddr, now_secs: u64) -> bool {
        if self.blocked.is_empty() {
            return false;
        }
        let key = WindowKey {
            code: code.clone(),
            range: net::ip_range(ip, self.ipv4_prefix, self.ipv6_prefix),
        };
        self.blocked
            .pin()
            .get(&key)
            .is_some_and(|until| *until > now_secs)
    }

    /// Mirrors the detector's [`Deadlines`]: `key` blocked until `until`.
    pub(super) fn insert(&self, key: WindowKey, until: u64) {
        self.blocked.pin().insert(key, until);
    }

    pub(super) fn remove(&self, key: &WindowKey) {
        self.blocked.pin().remove(key);
    }

    pub fn len(&self) -> usize {
        self.blocked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FraudAction::{BlockRange, DisableLink};

    #[test]
    fn the_policy_decides_and_a_grace_period_only_blocks() {
        assert_eq!(decide(BlockRange, None, 100), BlockRange);
        assert_eq!(decide(DisableLink, None, 100), DisableLink);
        // Re-enabled with grace until 160: blocked until then, disabled after.
        assert_eq!(decide(DisableLink, Some(160), 100), BlockRange);
        assert_eq!(decide(DisableLink, Some(160), 159), BlockRange);
        assert_eq!(decide(DisableLink, Some(160), 160), DisableLink);
        assert_eq!(decide(BlockRange, Some(160), 200), BlockRange);
    }

    #[test]
    fn deadlines_expire_in_order_and_stay_within_the_cap() {
        let mut d = Deadlines::new(2);
        assert!(d.set("a", 110, 100).is_empty());
        assert!(d.set("b", 120, 105).is_empty());
        assert_eq!(d.active(&"a", 109), Some(110));
        assert_eq!(d.active(&"a", 110), None, "ends at its deadline");
        assert_eq!(d.set("c", 130, 111), vec!["a"], "expired, and over the cap");
        assert_eq!(d.set("d", 140, 112), vec!["b"], "the cap drops the oldest");
        assert_eq!(d.len(), 2);
        // A later deadline extends; an earlier one does not shorten.
        assert!(d.set("c", 150, 113).is_empty());
        assert!(d.set("c", 115, 113).is_empty());
        assert_eq!(d.active(&"c", 145), Some(150));
        assert_eq!(
            d.set("e", 160, 141),
            vec!["d"],
            "c's first deadline was skipped"
        );
        assert_eq!(d.active(&"c", 141), Some(150));
    }

    #[test]
    fn a_blocked_range_blocks_only_its_link_and_only_until_its_deadline() {
        let list = Blocklist::new(24, 48);
        let code: Arc<str> = Arc::from("a");
        let key = WindowKey {
            code: code.clone(),
            range: "203.0.113.0/24".parse().unwrap(),
        };
        let attacker = IpAddr::from([203, 0, 113, 9]);
        assert!(!list.blocks(&code, attacker, 100));
        list.insert(key.clone(), 200);
        assert!(list.blocks(&code, attacker, 100));
        assert!(!list.blocks(&code, IpAddr::from([203, 0, 114, 9]), 100));
        assert!(!list.blocks(&Arc::from("b"), attacker, 100));
        assert!(!list.blocks(&code, attacker, 200));
        list.remove(&key);
        assert!(list.is_empty());
    }
}
