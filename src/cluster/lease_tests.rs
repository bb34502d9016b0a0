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

fn acquire(lease: LeaseName, epoch: i64) -> LeaseAction {
    LeaseAction::Acquire { lease, epoch }
}

fn renew(lease: LeaseName, epoch: i64) -> LeaseAction {
    LeaseAction::Renew { lease, epoch }
}

fn release(lease: LeaseName, epoch: i64) -> LeaseAction {
    LeaseAction::Release { lease, epoch }
}

fn start(lease: LeaseName, epoch: i64) -> LeaseAction {
    LeaseAction::StartActor { lease, epoch }
}

fn stop(lease: LeaseName) -> LeaseAction {
    LeaseAction::StopActor { lease }
}

fn holder(owner: Uuid, epoch: i64) -> Holder {
    Holder { owner, epoch }
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

    fn with_expiry_lease() -> (Self, LeaseName) {
        (Self::new(), LeaseName::Expiry)
    }

    /// Holds (since 0 ms, alone) a lease the other node would be preferred for.
    fn holding_a_lease_preferring_the_other() -> (Self, LeaseName) {
        let mut w = Self::new();
        let lease = lease_preferring(w.other, &[w.me, w.other], 0);
        w.hold(0, &[w.me], lease);
        (w, lease)
    }

    fn applied(&mut self, ms: u64, action: LeaseAction) -> Vec<LeaseAction> {
        self.settle(ms, action, LeaseOutcome::Applied)
    }

    /// A tick where this node is the only one live and `lease` the only lease.
    fn alone(&mut self, ms: u64, lease: LeaseName) -> Vec<LeaseAction> {
        let live = [self.me];
        self.tick(ms, &live, &[lease])
    }

    /// A tick where both nodes are live and `lease` is the only lease.
    fn with_other(&mut self, ms: u64, lease: LeaseName) -> Vec<LeaseAction> {
        let live = [self.me, self.other];
        self.tick(ms, &live, &[lease])
    }

    fn settle(&mut self, ms: u64, action: LeaseAction, outcome: LeaseOutcome) -> Vec<LeaseAction> {
        let now = self.at(ms);
        self.table.settle(action, outcome, now)
    }

    /// Acquires `lease` at `ms` (epoch 1) and returns the start action.
    fn hold(&mut self, ms: u64, live: &[Uuid], lease: LeaseName) -> Vec<LeaseAction> {
        let acquire = acquire(lease, 1);
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
    assert_eq!(actions, vec![acquire(mine, 1)]);
    assert_eq!(w.applied(3, actions[0]), vec![start(mine, 1)]);
    assert!(w.table.holds(mine) && !w.table.holds(theirs));
    assert_eq!(
        w.tick(1000, &live, &[mine, theirs]),
        vec![],
        "nothing due yet"
    );
}

#[test]
fn this_node_counts_itself_live_before_its_heartbeat_is_seen() {
    let (mut w, lease) = World::with_expiry_lease();
    assert_eq!(w.tick(0, &[], &[lease]), vec![acquire(lease, 1)]);
}

#[test]
fn a_holder_renews_every_quarter_ttl_and_keeps_running() {
    let (mut w, lease) = World::with_expiry_lease();
    w.hold(0, &[w.me], lease);
    assert_eq!(w.alone(2000, lease), vec![]);
    let renew = renew(lease, 1);
    assert_eq!(w.alone(2500, lease), vec![renew]);
    assert_eq!(w.alone(3000, lease), vec![], "one call in flight at a time");
    assert_eq!(w.applied(2600, renew), vec![]);
    // Renewed as of its send time (2.5 s): the 8 s deadline moved to 10.5 s.
    assert_eq!(w.alone(9000, lease), vec![renew]);
    assert!(w.table.holds(lease));
}

#[test]
fn a_holder_without_renewals_stops_at_ttl_minus_margin_counted_from_sending() {
    let (mut w, lease) = World::with_expiry_lease();
    let acquire = acquire(lease, 1);
    assert_eq!(w.alone(0, lease), vec![acquire]);
    // The answer comes late; the lease's clock started when the call was sent.
    w.applied(1500, acquire);
    let renew = renew(lease, 1);
    for at in [2500, 5000, 7500] {
        assert_eq!(w.tick(at, &[w.me], &[lease]), vec![renew]);
        assert_eq!(w.settle(at + 100, renew, LeaseOutcome::Failed), vec![]);
    }
    assert_eq!(w.alone(7999, lease), vec![renew]);
    w.settle(7999, renew, LeaseOutcome::Failed);
    assert!(w.table.holds(lease));
    // 8 s = ttl (10 s) - margin (2 s): stopped, then the own row is reclaimed.
    assert_eq!(w.alone(8000, lease), vec![stop(lease), renew]);
    assert!(!w.table.holds(lease));
    // A reclaim that succeeds starts the actor again.
    assert_eq!(w.applied(8050, renew), vec![start(lease, 1)]);
}

#[test]
fn answers_that_no_longer_apply_start_nothing() {
    let lease = LeaseName::Expiry;
    // A success that arrives after the deadline; an answer to a call not in flight.
    for (answer, at) in [(acquire(lease, 1), 8000), (renew(lease, 7), 10)] {
        let (mut w, lease) = World::with_expiry_lease();
        w.alone(0, lease);
        assert_eq!(w.applied(at, answer), vec![], "{answer:?}");
        assert!(!w.table.holds(lease));
    }
}

#[test]
fn a_dead_holders_lease_is_retried_until_its_ttl_frees_it_with_a_higher_epoch() {
    let (mut w, lease) = World::with_expiry_lease();
    let dead = holder(w.other, 4);
    let first = acquire(lease, 1);
    assert_eq!(w.alone(0, lease), vec![first]);
    assert_eq!(
        w.settle(5, first, LeaseOutcome::Refused(Some(dead))),
        vec![]
    );
    let retry = acquire(lease, 5);
    assert_eq!(w.alone(1000, lease), vec![retry]);
    w.settle(1005, retry, LeaseOutcome::Refused(Some(dead)));
    assert_eq!(w.alone(2000, lease), vec![retry]);
    assert_eq!(w.applied(2005, retry), vec![start(lease, 5)]);
}

#[test]
fn every_acquisition_takes_a_higher_epoch() {
    let (mut w, lease) = World::with_expiry_lease();
    w.hold(0, &[w.me], lease);
    // Someone else got it (our TTL lapsed in a partition) at epoch 2.
    let renew = renew(lease, 1);
    assert_eq!(w.alone(2500, lease), vec![renew]);
    let taken = holder(w.other, 2);
    assert_eq!(
        w.settle(2600, renew, LeaseOutcome::Refused(Some(taken))),
        vec![stop(lease)],
        "a refused renewal stops the actor at once"
    );
    // The row disappears; the next acquisition is above both epochs.
    assert_eq!(w.alone(3000, lease), vec![acquire(lease, 3)]);
}

#[test]
fn a_holder_that_is_no_longer_preferred_stops_then_releases() {
    let (mut w, lease) = World::holding_a_lease_preferring_the_other();
    let actions = w.with_other(1000, lease);
    let release = release(lease, 1);
    assert_eq!(actions, vec![stop(lease), release]);
    assert_eq!(w.applied(1010, release), vec![]);
    assert_eq!(w.with_other(2000, lease), vec![], "it is theirs now");
}

#[test]
fn a_failed_release_is_retried_and_a_lost_one_expires() {
    let (mut w, lease) = World::holding_a_lease_preferring_the_other();
    let release = release(lease, 1);
    w.with_other(1000, lease);
    w.settle(1010, release, LeaseOutcome::Failed);
    assert_eq!(w.with_other(2000, lease), vec![release]);
    // No answer at all: forgotten after a TTL, then asked again.
    assert_eq!(w.with_other(11_999, lease), vec![]);
    assert_eq!(w.with_other(12_000, lease), vec![release]);
}

#[test]
fn an_ambiguous_acquire_that_did_apply_is_reclaimed_by_renewal() {
    let (mut w, lease) = World::with_expiry_lease();
    let acquire = acquire(lease, 1);
    assert_eq!(w.alone(0, lease), vec![acquire]);
    w.settle(5000, acquire, LeaseOutcome::Failed);
    assert_eq!(w.alone(5000, lease), vec![acquire]);
    let ours = holder(w.me, 1);
    assert_eq!(
        w.settle(5010, acquire, LeaseOutcome::Refused(Some(ours))),
        vec![]
    );
    let renew = renew(lease, 1);
    assert_eq!(w.alone(6000, lease), vec![renew]);
    assert_eq!(w.applied(6010, renew), vec![start(lease, 1)]);
}

#[test]
fn a_deleted_endpoint_stops_and_releases_and_a_late_claim_is_released() {
    let mut w = World::new();
    let a = LeaseName::Endpoint(node(10));
    let b = LeaseName::Endpoint(node(11));
    w.hold(0, &[w.me], a);
    assert_eq!(w.tick(1000, &[w.me], &[]), vec![stop(a), release(a, 1)]);
    let acquire_b = acquire(b, 1);
    assert_eq!(w.alone(2000, b), vec![acquire_b]);
    w.tick(3000, &[w.me], &[]);
    assert_eq!(w.applied(3005, acquire_b), vec![release(b, 1)]);
    assert_eq!(w.table.held().count(), 0);
}

#[test]
fn a_renewal_answered_after_losing_preference_is_released_not_restarted() {
    let (mut w, lease) = World::holding_a_lease_preferring_the_other();
    let renew = renew(lease, 1);
    assert_eq!(w.alone(2500, lease), vec![renew]);
    // The node comes back while the renewal is in flight.
    let stop = vec![stop(lease)];
    assert_eq!(w.with_other(3000, lease), stop);
    assert_eq!(w.applied(3100, renew), vec![]);
    assert_eq!(w.with_other(4000, lease), vec![release(lease, 1)]);
}
