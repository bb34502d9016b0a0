//! One node's lease table: which leases (endpoint actors, the expiry singleton)
//! this node holds, as a pure state machine. The caller feeds it ticks (`now`,
//! live nodes, the leases that exist) and the answers to the database calls it
//! asked for; it returns [`LeaseAction`]s to carry out **in order** (a
//! `StopActor` completes before the `Release` after it is sent).
//!
//! Rules (DESIGN §6):
//! - only the preferred owner (rendezvous over live nodes, this node always
//!   counted live) acquires a free lease; a lease held by a dead node expires by
//!   TTL in the database, and the preferred owner's retried acquire then wins;
//! - every acquisition takes an epoch above every epoch this node has seen for
//!   that lease; renewals and releases are conditional on (owner, epoch);
//! - a holder stops its actor once `ttl - safety_margin` has passed since it
//!   *sent* its last successful claim (the database started the TTL after that),
//!   so the actor is stopped before the lease can expire for anyone else;
//! - a holder that is no longer preferred (a node came back) stops its actor,
//!   then releases, and the preferred node acquires on its next tick.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::rendezvous::preferred_owner;

/// Rendezvous key of the expiry singleton (any fixed value; every node uses it).
const EXPIRY_KEY: u128 = 0x7265_6c75_726c_2d65_7870_6972_792d_6c65;

/// What a lease grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseName {
    /// Running this endpoint's delivery actor.
    Endpoint(Uuid),
    /// Firing `link.expired` (one node at a time).
    Expiry,
}

impl LeaseName {
    /// The lease row's key in the database.
    pub fn key(&self) -> String {
        match self {
            LeaseName::Endpoint(id) => format!("endpoint:{id}"),
            LeaseName::Expiry => "expiry".to_string(),
        }
    }

    fn hash_key(&self) -> u128 {
        match self {
            LeaseName::Endpoint(id) => id.as_u128(),
            LeaseName::Expiry => EXPIRY_KEY,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// The lease row's TTL (`cluster.lease_ttl`).
    pub ttl: Duration,
    /// How long before the TTL could run out the holder stops its actor: room
    /// for the actor to stop and for clock-rate differences between nodes.
    pub safety_margin: Duration,
    /// A holder renews this long after its last successful claim was sent.
    pub renew_every: Duration,
}

impl LeaseTiming {
    /// Margin a fifth of the TTL, renewals every quarter: with the default 10 s
    /// TTL, three renewals can fail before the actor stops at 8 s.
    pub fn from_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            safety_margin: ttl / 5,
            renew_every: ttl / 4,
        }
    }

    fn stop_after(&self) -> Duration {
        self.ttl.saturating_sub(self.safety_margin)
    }
}

/// A lease row's owner and fencing epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub owner: Uuid,
    pub epoch: i64,
}

/// The answer to an `Acquire`, `Renew` or `Release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    Applied,
    /// The condition did not hold; the row as the database has it (none: absent).
    Refused(Option<Holder>),
    /// No answer (timeout, connection error): it may or may not have applied.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// Insert the lease row if absent, with this owner and epoch.
    Acquire {
        lease: LeaseName,
        epoch: i64,
    },
    /// Extend the row's TTL if it is still (this node, epoch).
    Renew {
        lease: LeaseName,
        epoch: i64,
    },
    /// Delete the row if it is still (this node, epoch).
    Release {
        lease: LeaseName,
        epoch: i64,
    },
    StartActor {
        lease: LeaseName,
        epoch: i64,
    },
    StopActor {
        lease: LeaseName,
    },
}

#[derive(Debug, Default)]
struct Slot {
    /// Held, actor running: the epoch and when the last successful claim was sent.
    held: Option<(i64, Instant)>,
    /// The row as last seen: someone else's, or this node's own after a lapse.
    seen: Option<Holder>,
    /// The highest epoch seen; the next acquisition takes one more.
    max_epoch: i64,
    /// This node was the preferred owner at the last tick.
    preferred: bool,
    /// At most one database call per lease at a time, and when it was sent.
    in_flight: Option<(LeaseAction, Instant)>,
}

pub struct LeaseTable {
    me: Uuid,
    timing: LeaseTiming,
    /// One slot per lease that exists (bounded by the caller's lease set).
    slots: BTreeMap<LeaseName, Slot>,
}

impl LeaseTable {
    pub fn new(me: Uuid, timing: LeaseTiming) -> Self {
        Self {
            me,
            timing,
            slots: BTreeMap::new(),
        }
    }

    /// The leases held (actor running) and their epochs.
    pub fn held(&self) -> impl Iterator<Item = (LeaseName, i64)> + '_ {
        self.slots
            .iter()
            .filter_map(|(name, slot)| slot.held.map(|(epoch, _)| (*name, epoch)))
    }

    pub fn holds(&self, lease: LeaseName) -> bool {
        self.slots.get(&lease).is_some_and(|s| s.held.is_some())
    }

    /// What to do at `now`, given the live nodes and every lease that exists.
    pub fn tick(
        &mut self,
        now: Instant,
        live: &[Uuid],
        leases: impl IntoIterator<Item = LeaseName>,
    ) -> Vec<LeaseAction> {
        let mut actions = Vec::new();
        let wanted: BTreeSet<LeaseName> = leases.into_iter().collect();
        self.slots.retain(|lease, slot| {
            let keep = wanted.contains(lease);
            if let (false, Some((epoch, _))) = (keep, slot.held) {
                // Gone (endpoint deleted): stop, then free the row at once.
                actions.push(LeaseAction::StopActor { lease: *lease });
                actions.push(LeaseAction::Release {
                    lease: *lease,
                    epoch,
                });
            }
            keep
        });
        let mut nodes: Vec<Uuid> = live.to_vec();
        nodes.push(self.me);
        for lease in wanted {
            let preferred = preferred_owner(lease.hash_key(), &nodes) == Some(self.me);
            let slot = self.slots.entry(lease).or_default();
            slot.step(&self.timing, self.me, lease, preferred, now, &mut actions);
        }
        actions
    }

    /// Takes the answer to `action` (one this table returned); returns what follows.
    pub fn settle(
        &mut self,
        action: LeaseAction,
        outcome: LeaseOutcome,
        now: Instant,
    ) -> Vec<LeaseAction> {
        let (lease, epoch) = match action {
            LeaseAction::Acquire { lease, epoch }
            | LeaseAction::Renew { lease, epoch }
            | LeaseAction::Release { lease, epoch } => (lease, epoch),
            LeaseAction::StartActor { .. } | LeaseAction::StopActor { .. } => return Vec::new(),
        };
        let claim = !matches!(action, LeaseAction::Release { .. });
        let Some(slot) = self.slots.get_mut(&lease) else {
            // The lease went away while the claim was in flight: free the row.
            return match (claim, outcome) {
                (true, LeaseOutcome::Applied) => vec![LeaseAction::Release { lease, epoch }],
                _ => Vec::new(),
            };
        };
        let sent_at = match slot.in_flight {
            Some((sent, at)) if sent == action => at,
            _ => return Vec::new(), // superseded (forgotten after a TTL): stale
        };
        slot.in_flight = None;
        let mine = Holder {
            owner: self.me,
            epoch,
        };
        let mut actions = Vec::new();
        match outcome {
            LeaseOutcome::Applied if claim => {
                slot.max_epoch = slot.max_epoch.max(epoch);
                slot.seen = Some(mine);
                // Valid only while the TTL started at (or after) `sent_at` runs;
                // no longer preferred, the next tick releases it unstarted.
                if slot.preferred && now < sent_at + self.timing.stop_after() {
                    if slot.held.is_none() {
                        actions.push(LeaseAction::StartActor { lease, epoch });
                    }
                    slot.held = Some((epoch, sent_at));
                }
            }
            LeaseOutcome::Applied => slot.seen = None,
            LeaseOutcome::Refused(holder) => {
                if let Some(h) = holder {
                    slot.max_epoch = slot.max_epoch.max(h.epoch);
                }
                slot.seen = holder;
                if slot.held.take().is_some() {
                    actions.push(LeaseAction::StopActor { lease });
                }
            }
            // Held stays held until its deadline; a lost release expires by TTL.
            LeaseOutcome::Failed => {}
        }
        actions
    }
}

impl Slot {
    /// This lease's part of a tick.
    fn step(
        &mut self,
        timing: &LeaseTiming,
        me: Uuid,
        lease: LeaseName,
        preferred: bool,
        now: Instant,
        actions: &mut Vec<LeaseAction>,
    ) {
        self.preferred = preferred;
        // An answer that never came: the row has expired by now whatever it did.
        if self
            .in_flight
            .is_some_and(|(_, sent)| now >= sent + timing.ttl)
        {
            self.in_flight = None;
        }
        if let Some((epoch, since)) = self.held {
            // Too long without a successful renewal (stop before anyone can
            // start it), or another node is preferred now (stop, then release).
            if now >= since + timing.stop_after() || !preferred {
                actions.push(LeaseAction::StopActor { lease });
                self.held = None;
                self.seen = Some(Holder { owner: me, epoch });
            } else if self.in_flight.is_none() && now >= since + timing.renew_every {
                self.send(LeaseAction::Renew { lease, epoch }, now, actions);
            }
        }
        if self.held.is_some() || self.in_flight.is_some() {
            return;
        }
        let own_row = self.seen.filter(|h| h.owner == me);
        let next = match (preferred, own_row) {
            // Our row may still be live (a lapse, an ambiguous answer): reclaim it.
            (true, Some(h)) => LeaseAction::Renew {
                lease,
                epoch: h.epoch,
            },
            (true, None) => LeaseAction::Acquire {
                lease,
                epoch: self.max_epoch + 1,
            },
            // Hand it to the preferred owner now rather than at TTL.
            (false, Some(h)) => LeaseAction::Release {
                lease,
                epoch: h.epoch,
            },
            (false, None) => return,
        };
        self.send(next, now, actions);
    }

    fn send(&mut self, action: LeaseAction, now: Instant, out: &mut Vec<LeaseAction>) {
        self.in_flight = Some((action, now));
        out.push(action);
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
