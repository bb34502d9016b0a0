//! The machine driven by hand: events in, actions out, time as an argument.

use chrono::TimeZone;

use super::*;
use crate::domain::Secret;

pub(super) type Machine = DeliveryMachine<u32>;
pub(super) type Actions = Vec<Action<u32>>;

pub(super) const SEC: i64 = 1000;

/// Milliseconds after a fixed start.
pub(super) fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_800_000_000_000 + ms)
        .single()
        .expect("a valid instant")
}

pub(super) fn rules() -> Rules {
    Rules {
        retry_schedule: [60, 300, 900].map(Duration::from_secs).to_vec(),
        retry_jitter: 0.0,
        max_in_flight: 4,
        disable_after_failed_deliveries: 3,
        memory_cap: 8,
    }
}

fn no_retries() -> Rules {
    let mut rules = rules();
    rules.retry_schedule.clear();
    rules
}

fn endpoint(rate: u32) -> Endpoint {
    Endpoint {
        id: Uuid::from_u128(1),
        account_id: Uuid::from_u128(2),
        url: "https://example.com/hook".into(),
        events: vec!["*".into()],
        enabled: true,
        disabled_reason: None,
        rate_limit_per_sec: rate,
        description: String::new(),
        secrets: vec![Secret {
            value: "whsec_new".into(),
            expires_at: None,
        }],
        created_at: t(0),
        updated_at: t(0),
        failed_streak: 0,
        version: 0,
    }
}

pub(super) fn delivery(n: u128, due: DateTime<Utc>) -> Delivery {
    Delivery {
        endpoint_id: Uuid::from_u128(1),
        event_id: Uuid::from_u128(100 + n),
        event_type: "link.clicked".into(),
        body: "{}".into(),
        created_at: due,
        attempts: 0,
        first_attempt_at: None,
        next_attempt_at: due,
        status: DeliveryStatus::Pending,
    }
}

pub(super) fn id(n: u128) -> Uuid {
    Uuid::from_u128(100 + n)
}

/// A machine past its first read of an (empty) outbox.
pub(super) fn started(rules: Rules, rate: u32) -> Machine {
    let mut m = Machine::new(endpoint(rate), rules);
    assert_eq!(loads(&m.handle(Input::Wake, t(0))), [4]);
    assert!(m.handle(Input::Loaded(Some(Vec::new())), t(0)).is_empty());
    m
}

pub(super) fn arrive(m: &mut Machine, ds: Vec<Delivery>, now: DateTime<Utc>) -> Actions {
    m.handle(Input::Arrived(ds), now)
}

/// What every action matching the pattern carries, in order.
macro_rules! picked {
    ($actions:expr, $pattern:pat => $value:expr) => {
        $actions
            .iter()
            .filter_map(|a| match a {
                $pattern => Some($value),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
}

/// The deliveries sent, with their attempt numbers.
pub(super) fn sent(actions: &Actions) -> Vec<(Delivery, u32)> {
    picked!(actions, Action::Send { delivery, attempt, .. } => (delivery.clone(), *attempt))
}

fn sent_ids(actions: &Actions) -> Vec<Uuid> {
    picked!(actions, Action::Send { delivery, .. } => delivery.event_id)
}

fn loads(actions: &Actions) -> Vec<usize> {
    picked!(actions, Action::Load { limit } => *limit)
}

fn wakes(actions: &Actions) -> Vec<DateTime<Utc>> {
    picked!(actions, Action::WakeAt(at) => *at)
}

fn saved(actions: &Actions) -> Vec<(Attempt, DeliveryUpdate)> {
    picked!(actions, Action::SaveOutcomes(batch) => batch.clone()).concat()
}

fn report(kind: OutcomeKind, retry_after: Option<Duration>) -> AttemptReport {
    AttemptReport {
        kind,
        status: Some(if kind == OutcomeKind::Success {
            200
        } else {
            500
        }),
        error: None,
        retry_after,
        body: None,
        duration: Duration::from_millis(10),
    }
}

fn finish(
    d: Delivery,
    report: AttemptReport,
    started_at: DateTime<Utc>,
    jitter: f64,
) -> Input<u32> {
    Input::Finished(Box::new(Finished {
        delivery: d,
        report,
        attempt_id: Uuid::now_v7(),
        started_at,
        jitter,
    }))
}

fn fail(m: &mut Machine, d: Delivery, started_at: DateTime<Utc>, now: DateTime<Utc>) -> Actions {
    m.handle(
        finish(d, report(OutcomeKind::HttpError, None), started_at, 0.0),
        now,
    )
}

fn succeed(m: &mut Machine, d: Delivery, now: DateTime<Utc>) -> Actions {
    m.handle(finish(d, report(OutcomeKind::Success, None), now, 0.0), now)
}

/// One delivery arrives due now and is sent: the delivery as sent.
fn send_one(m: &mut Machine, n: u128, now: DateTime<Utc>) -> Delivery {
    let mut sends = sent(&arrive(m, vec![delivery(n, now)], now));
    assert_eq!(sends.len(), 1, "one send");
    sends.remove(0).0
}

/// Sends one delivery due now and fails it at `now`: the actions of the failure.
fn send_and_fail(m: &mut Machine, n: u128, now: DateTime<Utc>) -> Actions {
    let d = send_one(m, n, now);
    fail(m, d, now, now)
}

#[test]
fn retries_follow_the_schedule_from_the_first_attempt() {
    let mut m = started(rules(), 100);
    let (d, attempt) = sent(&arrive(&mut m, vec![delivery(1, t(0))], t(0))).remove(0);
    assert_eq!(attempt, 1);
    let actions = fail(&mut m, d, t(0), t(2 * SEC));
    assert_eq!(wakes(&actions), [t(60 * SEC)]);
    let (attempt, update) = saved(&actions).remove(0);
    assert_eq!(
        (attempt.status, attempt.next_attempt_at),
        (AttemptStatus::Pending, Some(t(60 * SEC)))
    );
    let DeliveryUpdate::Save(row) = update else {
        panic!("a failed attempt keeps the row")
    };
    assert_eq!(row.first_attempt_at, Some(t(0)));
    m.handle(Input::OutcomesSaved, t(2 * SEC));

    assert!(sent(&m.handle(Input::Wake, t(59 * SEC))).is_empty());
    // Each attempt starts late; the next stays on the schedule from the first.
    let mut now = t(60 * SEC);
    for (next_attempt, due) in [(2, 300), (3, 900)] {
        let (d, attempt) = sent(&m.handle(Input::Wake, now)).remove(0);
        assert_eq!(attempt, next_attempt);
        let actions = fail(&mut m, d, now, now + TimeDelta::seconds(5));
        assert_eq!(wakes(&actions), [t(due * SEC)]);
        m.handle(Input::OutcomesSaved, now);
        now = t(due * SEC);
    }
    let (d, attempt) = sent(&m.handle(Input::Wake, now)).remove(0);
    assert_eq!(attempt, 4);
    let actions = fail(&mut m, d, now, now);
    let (attempt, update) = saved(&actions).remove(0);
    assert_eq!(attempt.status, AttemptStatus::Failed);
    assert!(matches!(update, DeliveryUpdate::Save(row) if row.status == DeliveryStatus::Failed));
    assert!(wakes(&actions).is_empty());
}

#[test]
fn jitter_moves_a_retry_within_its_fraction() {
    let mut rules = rules();
    rules.retry_jitter = 0.1;
    let mut m = started(rules, 100);
    let ds = (1..=3).map(|n| delivery(n, t(0))).collect();
    let sends = sent(&arrive(&mut m, ds, t(0)));
    let mut retries = Vec::new();
    for ((d, _), jitter) in sends.into_iter().zip([-1.0, 1.0, 0.5]) {
        let actions = m.handle(
            finish(d, report(OutcomeKind::Timeout, None), t(0), jitter),
            t(0),
        );
        retries.extend(saved(&actions).into_iter().map(|(a, _)| a.next_attempt_at));
        m.handle(Input::OutcomesSaved, t(0));
    }
    let batch: Vec<_> = retries.into_iter().flatten().collect();
    // The first settles alone, the next two in one batch after it.
    assert_eq!(batch, [t(54 * SEC), t(66 * SEC), t(63 * SEC)]);
}

/// When the first retry is due if the receiver answers 429 at 1 s with `Retry-After: secs`.
fn retry_after(secs: u64) -> Vec<DateTime<Utc>> {
    let mut m = started(rules(), 100);
    let d = send_one(&mut m, 1, t(0));
    let asked = report(OutcomeKind::RateLimited, Some(Duration::from_secs(secs)));
    wakes(&m.handle(finish(d, asked, t(0), 0.0), t(SEC)))
}

#[test]
fn a_later_retry_after_wins_over_the_schedule() {
    assert_eq!(retry_after(120), [t(121 * SEC)]);
}

#[test]
fn an_earlier_retry_after_does_not_hasten_the_schedule() {
    assert_eq!(retry_after(5), [t(60 * SEC)]);
}

#[test]
fn the_in_flight_cap_holds_sends_back() {
    let mut m = started(rules(), 100);
    let ds = (1..=6).map(|n| delivery(n, t(0))).collect();
    let first = sent(&arrive(&mut m, ds, t(0)));
    assert_eq!(first.len(), 4);
    let (d, _) = first.into_iter().next().expect("one sent");
    assert_eq!(sent_ids(&succeed(&mut m, d, t(10))), [id(5)]);
}

#[test]
fn the_rate_limit_says_when_to_wake() {
    let mut m = started(rules(), 2);
    let ds = (1..=4).map(|n| delivery(n, t(0))).collect();
    let actions = arrive(&mut m, ds, t(0));
    assert_eq!(sent_ids(&actions), [id(1), id(2)]);
    assert_eq!(wakes(&actions), [t(500)]);
    // Early: nothing to send, and the timer already asked for stays.
    assert!(m.handle(Input::Wake, t(499)).is_empty());
    let actions = m.handle(Input::Wake, t(500));
    assert_eq!(sent_ids(&actions), [id(3)]);
    assert_eq!(wakes(&actions), [t(1000)]);
}

#[test]
fn a_rate_limit_update_takes_effect_at_once() {
    let mut m = started(rules(), 1);
    let ds = (1..=3).map(|n| delivery(n, t(0))).collect();
    assert_eq!(sent_ids(&arrive(&mut m, ds, t(0))), [id(1)]);
    let actions = m.handle(Input::Updated(Box::new(endpoint(10))), t(0));
    assert_eq!(sent_ids(&actions), [id(2), id(3)]);
}

#[test]
fn one_timer_at_a_time_asked_again_only_for_earlier() {
    let mut m = started(rules(), 100);
    assert_eq!(
        wakes(&arrive(&mut m, vec![delivery(1, t(10 * SEC))], t(0))),
        [t(10 * SEC)]
    );
    assert_eq!(
        wakes(&arrive(&mut m, vec![delivery(2, t(5 * SEC))], t(0))),
        [t(5 * SEC)]
    );
    assert!(wakes(&arrive(&mut m, vec![delivery(3, t(20 * SEC))], t(0))).is_empty());
    let actions = m.handle(Input::Wake, t(5 * SEC));
    assert_eq!(sent_ids(&actions), [id(2)]);
    assert_eq!(wakes(&actions), [t(10 * SEC)]);
}

#[test]
fn past_the_memory_bound_deliveries_spill_and_come_back_once() {
    let mut rules = rules();
    rules.max_in_flight = 8;
    let mut m = started(rules, 100);
    let ds: Vec<_> = (1..=10).map(|n| delivery(n, t(0))).collect();
    let first = sent(&arrive(&mut m, ds.clone(), t(0)));
    assert_eq!(first.len(), 8);
    assert_eq!(m.held(), 8);
    let mut actions = Vec::new();
    for (d, _) in first.into_iter().take(5) {
        actions.extend(succeed(&mut m, d, t(10)));
    }
    assert_eq!(saved(&actions).len(), 1, "one batch in flight at a time");
    assert_eq!(saved(&m.handle(Input::OutcomesSaved, t(20))).len(), 4);
    // Three are left in flight: room to read the outbox back.
    assert_eq!(loads(&m.handle(Input::OutcomesSaved, t(30))), [7]);
    // The outbox still has the three in flight and the two spilled.
    let rows = ds[5..].to_vec();
    let actions = m.handle(Input::Loaded(Some(rows)), t(40));
    assert_eq!(sent_ids(&actions), [id(9), id(10)]);
    assert_eq!(m.held(), 5);
    // Fewer rows than asked for: nothing more to read.
    assert!(loads(&actions).is_empty());
}

#[test]
fn a_reload_racing_a_settle_does_not_bring_a_delivery_back() {
    let mut m = started(rules(), 100);
    let d1 = send_one(&mut m, 1, t(0));
    let d2 = send_one(&mut m, 2, t(0));
    m.note_spilled();
    assert_eq!(loads(&m.handle(Input::Wake, t(1))), [6]);
    // While the read runs, d1 is delivered and its row deleted; d2 delivered, not yet written.
    succeed(&mut m, d1.clone(), t(2));
    m.handle(Input::OutcomesSaved, t(3));
    succeed(&mut m, d2.clone(), t(4));
    // The read had seen both rows before the deletes.
    let actions = m.handle(Input::Loaded(Some(vec![d1, d2])), t(5));
    assert!(sent(&actions).is_empty(), "{actions:?}");
    m.handle(Input::OutcomesSaved, t(6));
    assert_eq!(m.held(), 0);
}

#[test]
fn a_failed_read_is_tried_again_a_second_later() {
    let mut m = Machine::new(endpoint(100), rules());
    assert_eq!(loads(&m.handle(Input::Wake, t(0))), [4]);
    assert_eq!(wakes(&m.handle(Input::Loaded(None), t(0))), [t(SEC)]);
    assert!(m.handle(Input::Wake, t(500)).is_empty());
    assert_eq!(loads(&m.handle(Input::Wake, t(SEC))), [4]);
}

#[test]
fn an_endpoint_whose_deliveries_keep_failing_is_disabled() {
    let mut m = started(no_retries(), 100);
    for n in 1..=2 {
        let actions = send_and_fail(&mut m, n, t(0));
        assert!(!actions.iter().any(|a| matches!(a, Action::Disabled { .. })));
    }
    let actions = send_and_fail(&mut m, 3, t(0));
    let disabled = actions
        .iter()
        .find(|a| matches!(a, Action::Disabled { .. }));
    assert!(matches!(disabled, Some(Action::Disabled { failed: 3 })));
    let endpoint = m.endpoint();
    assert!(!endpoint.enabled);
    assert_eq!(
        endpoint.disabled_reason.as_deref(),
        Some("disabled automatically: the last 3 deliveries failed")
    );
    assert!(sent(&arrive(&mut m, vec![delivery(4, t(0))], t(0))).is_empty());
}

#[test]
fn a_success_resets_the_failed_streak() {
    let mut m = started(no_retries(), 100);
    send_and_fail(&mut m, 1, t(0));
    send_and_fail(&mut m, 2, t(0));
    assert_eq!(m.endpoint().failed_streak, 2);
    let d = send_one(&mut m, 3, t(0));
    succeed(&mut m, d, t(0));
    assert_eq!(m.endpoint().failed_streak, 0);
    send_and_fail(&mut m, 4, t(0));
    send_and_fail(&mut m, 5, t(0));
    assert!(m.endpoint().enabled);
}

#[test]
fn endpoint_writes_go_one_at_a_time_with_the_latest_state() {
    let mut m = started(no_retries(), 100);
    let streak = |actions: &Actions| picked!(actions, Action::SaveHealth { version, health } => (*version, health.failed_streak));
    assert_eq!(streak(&send_and_fail(&mut m, 1, t(0))), [(0, 1)]);
    assert!(streak(&send_and_fail(&mut m, 2, t(0))).is_empty());
    // Written as version 1: the next write expects it.
    assert_eq!(
        streak(&m.handle(Input::EndpointSaved(Some(1)), t(0))),
        [(1, 2)]
    );
    assert!(streak(&m.handle(Input::EndpointSaved(Some(2)), t(0))).is_empty());
}

#[test]
fn an_api_change_wins_over_the_machines_own_fields() {
    let mut m = started(no_retries(), 100);
    send_and_fail(&mut m, 1, t(0));
    // The API wrote version 1 first; the machine's write gave way.
    let mut patched = endpoint(100);
    patched.url = "https://example.com/patched".into();
    patched.version = 1;
    m.handle(Input::Updated(Box::new(patched.clone())), t(0));
    m.handle(Input::EndpointSaved(None), t(0));
    assert_eq!(m.endpoint(), &patched);
    // An update older than what the machine holds changes nothing.
    let mut older = endpoint(100);
    older.url = "https://example.com/older".into();
    m.handle(Input::Updated(Box::new(older)), t(0));
    assert_eq!(m.endpoint().url, "https://example.com/patched");
    // The next write of its own fields expects the API's version.
    let actions = send_and_fail(&mut m, 2, t(0));
    let writes = picked!(actions, Action::SaveHealth { version, .. } => *version);
    assert_eq!(writes, [1]);
}

#[test]
fn a_rotated_out_secret_signs_until_it_expires() {
    let mut rotated = endpoint(100);
    rotated.secrets.push(Secret {
        value: "whsec_old".into(),
        expires_at: Some(t(24 * 3600 * SEC)),
    });
    let mut m = Machine::new(rotated, no_retries());
    m.handle(Input::Wake, t(0));
    m.handle(Input::Loaded(Some(Vec::new())), t(0));
    let secrets = |actions: Actions| {
        picked!(actions, Action::Send { secrets, .. } => secrets.clone()).concat()
    };
    let day = t(24 * 3600 * SEC);
    let just_before = day - TimeDelta::milliseconds(1);
    for (n, now) in [(1, t(0)), (2, just_before)] {
        assert_eq!(
            secrets(arrive(&mut m, vec![delivery(n, now)], now)),
            ["whsec_new", "whsec_old"]
        );
    }
    assert_eq!(
        secrets(arrive(&mut m, vec![delivery(3, day)], day)),
        ["whsec_new"]
    );
}

#[test]
fn a_disabled_endpoint_sends_nothing_until_enabled_again() {
    let mut m = started(rules(), 100);
    let mut off = endpoint(100);
    off.enabled = false;
    m.handle(Input::Updated(Box::new(off)), t(0));
    assert!(arrive(&mut m, vec![delivery(1, t(0))], t(0)).is_empty());
    assert!(m.handle(Input::Wake, t(SEC)).is_empty());
    // Enabled again: what is held goes, and the outbox is read for the rest.
    let actions = m.handle(Input::Updated(Box::new(endpoint(100))), t(2 * SEC));
    assert_eq!(sent_ids(&actions), [id(1)]);
    assert_eq!(loads(&actions), [5]);
}

#[test]
fn stopping_hands_back_the_writes_still_owed() {
    let mut m = started(no_retries(), 100);
    send_and_fail(&mut m, 1, t(0));
    send_and_fail(&mut m, 2, t(0));
    // One batch and one endpoint write are in flight; the second of each waits.
    let owed = m.stop();
    assert!(
        matches!(&owed[..], [Action::SaveOutcomes(b), Action::SaveHealth { health, .. }] if b.len() == 1 && health.failed_streak == 2)
    );
    assert!(m.stop().is_empty());
}
