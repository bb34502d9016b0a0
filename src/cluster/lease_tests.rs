use super::*;

const TTL: Duration = Duration::from_secs(10);

fn node(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// An endpoint lease whose preferred owner among `nodes` is `owner`.
fn lease_preferring(owner: Uuid, nodes: &[Uuid], skip: usize) -> LeaseName {
    (0u128..)
        .map(|i| LeaseName::Endpoint(Uuid::from_u128(i * 7919)))
        .filter(|l| preferred_owner(l.hash_key(), nodes) == Some(owner))
        .nth(skip)
        .expect("some key prefers every node")
}

struct World {
    t0: Instant,
    me: Uuid,
    other: Uuid,
    table: LeaseTable,
}

impl World {
    fn new() -> Self {
        let me = node(1);
        Self {
            t0: Instant::now(),
            me,
            other: node(2),
            table: LeaseTable::new(me, LeaseTiming::from_ttl(TTL)),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn tick(&mut self, ms: u64, live: &[Uuid], leases: &[LeaseName]) -> Vec<LeaseAction> {
        let now = self.at(ms);
        self.table.tick(now, live, leases.iter().copied())
    }

    fn settle(&mut self, ms: u64, action: LeaseAction, outcome: LeaseOutcome) -> Vec<LeaseAction> {
        let now = self.at(ms);
        self.table.settle(action, outcome, now)
    }

    /// Acquires `lease` at `ms` (epoch 1) and returns the start action.
    fn hold(&mut self, ms: u64, live: &[Uuid], lease: LeaseName) -> Vec<LeaseAction> {
        let acquire = LeaseAction::Acquire { lease, epoch: 1 };
        assert_eq!(self.tick(ms, live, &[lease]), vec![acquire]);
        self.settle(ms + 5, acquire, LeaseOutcome::Applied)
    }
}

#[test]
fn only_the_preferred_owner_acquires_a_free_lease() {
    let mut w = World::new();
    let live = [w.me, w.other];
    let mine = lease_preferring(w.me, &live, 0);
    let theirs = lease_preferring(w.other, &live, 0);
    let actions = w.tick(0, &live, &[mine, theirs]);
    assert_eq!(
        actions,
        vec![LeaseAction::Acquire {
            lease: mine,
            epoch: 1
        }]
    );
    let start = w.settle(3, actions[0], LeaseOutcome::Applied);
    assert_eq!(
        start,
        vec![LeaseAction::StartActor {
            lease: mine,
            epoch: 1
        }]
    );
    assert!(w.table.holds(mine) && !w.table.holds(theirs));
    assert_eq!(
        w.tick(1000, &live, &[mine, theirs]),
        vec![],
        "nothing due yet"
    );
}

#[test]
fn this_node_counts_itself_live_before_its_heartbeat_is_seen() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    assert_eq!(
        w.tick(0, &[], &[lease]),
        vec![LeaseAction::Acquire { lease, epoch: 1 }]
    );
}

#[test]
fn a_holder_renews_every_quarter_ttl_and_keeps_running() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    w.hold(0, &[w.me], lease);
    assert_eq!(w.tick(2000, &[w.me], &[lease]), vec![]);
    let renew = LeaseAction::Renew { lease, epoch: 1 };
    assert_eq!(w.tick(2500, &[w.me], &[lease]), vec![renew]);
    assert_eq!(
        w.tick(3000, &[w.me], &[lease]),
        vec![],
        "one call in flight at a time"
    );
    assert_eq!(w.settle(2600, renew, LeaseOutcome::Applied), vec![]);
    // Renewed as of its send time (2.5 s): the 8 s deadline moved to 10.5 s.
    assert_eq!(w.tick(9000, &[w.me], &[lease]), vec![renew]);
    assert!(w.table.holds(lease));
}

#[test]
fn a_holder_without_renewals_stops_at_ttl_minus_margin_counted_from_sending() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    let acquire = LeaseAction::Acquire { lease, epoch: 1 };
    assert_eq!(w.tick(0, &[w.me], &[lease]), vec![acquire]);
    // The answer comes late; the lease's clock started when the call was sent.
    w.settle(1500, acquire, LeaseOutcome::Applied);
    let renew = LeaseAction::Renew { lease, epoch: 1 };
    for at in [2500, 5000, 7500] {
        assert_eq!(w.tick(at, &[w.me], &[lease]), vec![renew]);
        assert_eq!(w.settle(at + 100, renew, LeaseOutcome::Failed), vec![]);
    }
    assert_eq!(w.tick(7999, &[w.me], &[lease]), vec![renew]);
    w.settle(7999, renew, LeaseOutcome::Failed);
    assert!(w.table.holds(lease));
    // 8 s = ttl (10 s) - margin (2 s): stopped, then the own row is reclaimed.
    assert_eq!(
        w.tick(8000, &[w.me], &[lease]),
        vec![LeaseAction::StopActor { lease }, renew]
    );
    assert!(!w.table.holds(lease));
    // A reclaim that succeeds starts the actor again.
    assert_eq!(
        w.settle(8050, renew, LeaseOutcome::Applied),
        vec![LeaseAction::StartActor { lease, epoch: 1 }]
    );
}

#[test]
fn a_success_that_arrives_after_the_deadline_does_not_start_the_actor() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    let acquire = LeaseAction::Acquire { lease, epoch: 1 };
    w.tick(0, &[w.me], &[lease]);
    assert_eq!(w.settle(8000, acquire, LeaseOutcome::Applied), vec![]);
    assert!(!w.table.holds(lease));
}

#[test]
fn a_dead_holders_lease_is_retried_until_its_ttl_frees_it_with_a_higher_epoch() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    let dead = Holder {
        owner: w.other,
        epoch: 4,
    };
    let first = LeaseAction::Acquire { lease, epoch: 1 };
    assert_eq!(w.tick(0, &[w.me], &[lease]), vec![first]);
    assert_eq!(
        w.settle(5, first, LeaseOutcome::Refused(Some(dead))),
        vec![]
    );
    let retry = LeaseAction::Acquire { lease, epoch: 5 };
    assert_eq!(w.tick(1000, &[w.me], &[lease]), vec![retry]);
    w.settle(1005, retry, LeaseOutcome::Refused(Some(dead)));
    assert_eq!(w.tick(2000, &[w.me], &[lease]), vec![retry]);
    assert_eq!(
        w.settle(2005, retry, LeaseOutcome::Applied),
        vec![LeaseAction::StartActor { lease, epoch: 5 }]
    );
}

#[test]
fn every_acquisition_takes_a_higher_epoch() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    w.hold(0, &[w.me], lease);
    // Someone else got it (our TTL lapsed in a partition) at epoch 2.
    let renew = LeaseAction::Renew { lease, epoch: 1 };
    assert_eq!(w.tick(2500, &[w.me], &[lease]), vec![renew]);
    let taken = Holder {
        owner: w.other,
        epoch: 2,
    };
    assert_eq!(
        w.settle(2600, renew, LeaseOutcome::Refused(Some(taken))),
        vec![LeaseAction::StopActor { lease }],
        "a refused renewal stops the actor at once"
    );
    // The row disappears; the next acquisition is above both epochs.
    assert_eq!(
        w.tick(3000, &[w.me], &[lease]),
        vec![LeaseAction::Acquire { lease, epoch: 3 }]
    );
}

#[test]
fn a_holder_that_is_no_longer_preferred_stops_then_releases() {
    let mut w = World::new();
    let back = w.other;
    let lease = lease_preferring(back, &[w.me, back], 0);
    w.hold(0, &[w.me], lease);
    let actions = w.tick(1000, &[w.me, back], &[lease]);
    let release = LeaseAction::Release { lease, epoch: 1 };
    assert_eq!(actions, vec![LeaseAction::StopActor { lease }, release]);
    assert_eq!(w.settle(1010, release, LeaseOutcome::Applied), vec![]);
    assert_eq!(
        w.tick(2000, &[w.me, back], &[lease]),
        vec![],
        "it is theirs now"
    );
}

#[test]
fn a_failed_release_is_retried_and_a_lost_one_expires() {
    let mut w = World::new();
    let back = w.other;
    let lease = lease_preferring(back, &[w.me, back], 0);
    w.hold(0, &[w.me], lease);
    let release = LeaseAction::Release { lease, epoch: 1 };
    w.tick(1000, &[w.me, back], &[lease]);
    w.settle(1010, release, LeaseOutcome::Failed);
    assert_eq!(w.tick(2000, &[w.me, back], &[lease]), vec![release]);
    // No answer at all: forgotten after a TTL, then asked again.
    assert_eq!(w.tick(11_999, &[w.me, back], &[lease]), vec![]);
    assert_eq!(w.tick(12_000, &[w.me, back], &[lease]), vec![release]);
}

#[test]
fn an_ambiguous_acquire_that_did_apply_is_reclaimed_by_renewal() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    let acquire = LeaseAction::Acquire { lease, epoch: 1 };
    w.tick(0, &[w.me], &[lease]);
    w.settle(5000, acquire, LeaseOutcome::Failed);
    let again = w.tick(5000, &[w.me], &[lease]);
    assert_eq!(again, vec![acquire]);
    let ours = Holder {
        owner: w.me,
        epoch: 1,
    };
    assert_eq!(
        w.settle(5010, acquire, LeaseOutcome::Refused(Some(ours))),
        vec![]
    );
    let renew = LeaseAction::Renew { lease, epoch: 1 };
    assert_eq!(w.tick(6000, &[w.me], &[lease]), vec![renew]);
    assert_eq!(
        w.settle(6010, renew, LeaseOutcome::Applied),
        vec![LeaseAction::StartActor { lease, epoch: 1 }]
    );
}

#[test]
fn a_deleted_endpoint_stops_and_releases_and_a_late_claim_is_released() {
    let mut w = World::new();
    let a = LeaseName::Endpoint(node(10));
    let b = LeaseName::Endpoint(node(11));
    w.hold(0, &[w.me], a);
    assert_eq!(
        w.tick(1000, &[w.me], &[]),
        vec![
            LeaseAction::StopActor { lease: a },
            LeaseAction::Release { lease: a, epoch: 1 }
        ]
    );
    let acquire_b = LeaseAction::Acquire { lease: b, epoch: 1 };
    assert_eq!(w.tick(2000, &[w.me], &[b]), vec![acquire_b]);
    w.tick(3000, &[w.me], &[]);
    assert_eq!(
        w.settle(3005, acquire_b, LeaseOutcome::Applied),
        vec![LeaseAction::Release { lease: b, epoch: 1 }]
    );
    assert_eq!(w.table.held().count(), 0);
}

#[test]
fn answers_to_calls_not_in_flight_are_ignored() {
    let mut w = World::new();
    let lease = LeaseName::Expiry;
    let stale = LeaseAction::Renew { lease, epoch: 7 };
    w.tick(0, &[w.me], &[lease]);
    assert_eq!(w.settle(10, stale, LeaseOutcome::Applied), vec![]);
    assert!(!w.table.holds(lease));
}

#[test]
fn a_renewal_answered_after_losing_preference_is_released_not_restarted() {
    let mut w = World::new();
    let back = w.other;
    let lease = lease_preferring(back, &[w.me, back], 0);
    w.hold(0, &[w.me], lease);
    let renew = LeaseAction::Renew { lease, epoch: 1 };
    assert_eq!(w.tick(2500, &[w.me], &[lease]), vec![renew]);
    // The node comes back while the renewal is in flight.
    let stop = vec![LeaseAction::StopActor { lease }];
    assert_eq!(w.tick(3000, &[w.me, back], &[lease]), stop);
    assert_eq!(w.settle(3100, renew, LeaseOutcome::Applied), vec![]);
    assert_eq!(
        w.tick(4000, &[w.me, back], &[lease]),
        vec![LeaseAction::Release { lease, epoch: 1 }]
    );
}
