//! Delivery policy, pure: what an attempt's result means, when the next
//! attempt is due, and how fast attempts may go.

use std::{num::NonZeroU32, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use governor::{
    Quota,
    clock::{Clock, FakeRelativeClock},
    middleware::NoOpMiddleware,
    state::{InMemoryState, NotKeyed},
};

/// How an attempt ended, as metrics and the attempts log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Success,
    HttpError,
    RateLimited,
    Timeout,
    ConnectError,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 5] = [
        OutcomeKind::Success,
        OutcomeKind::HttpError,
        OutcomeKind::RateLimited,
        OutcomeKind::Timeout,
        OutcomeKind::ConnectError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Success => "success",
            OutcomeKind::HttpError => "http_error",
            OutcomeKind::RateLimited => "rate_limited",
            OutcomeKind::Timeout => "timeout",
            OutcomeKind::ConnectError => "connect_error",
        }
    }

    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => OutcomeKind::Success,
            429 => OutcomeKind::RateLimited,
            _ => OutcomeKind::HttpError,
        }
    }
}

/// When the next attempt is due after `attempts_made` failed attempts, or `None`
/// when the schedule is exhausted. Offsets count from the first attempt;
/// `jitter_unit` in [-1, 1] scales `jitter`; a later `Retry-After` wins.
pub fn next_attempt_at(
    schedule: &[Duration],
    jitter: f64,
    jitter_unit: f64,
    first_attempt_at: DateTime<Utc>,
    attempts_made: u32,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let offset = *schedule.get(attempts_made.checked_sub(1)? as usize)?;
    let factor = (1.0 + jitter * jitter_unit.clamp(-1.0, 1.0)).max(0.0);
    let jittered = offset.mul_f64(factor);
    let mut at = first_attempt_at + chrono::Duration::from_std(jittered).ok()?;
    if at < now {
        at = now;
    }
    if let Some(wait) = retry_after {
        let asked = now + chrono::Duration::from_std(wait).ok()?;
        if asked > at {
            at = asked;
        }
    }
    Some(at)
}

/// The longest `Retry-After` honoured; beyond it the schedule decides.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        // A date already past asks for no wait at all.
        at.duration_since(now.into()).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An endpoint's governor limiter (`Quota::per_second(rate)`: bursts of
/// `rate`, then one every 1/rate s) on a clock the caller moves with the `now`
/// it passes, so the delivery machine stays a pure function of its inputs.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u32,
    clock: FakeRelativeClock,
    limiter: governor::RateLimiter<
        NotKeyed,
        InMemoryState,
        FakeRelativeClock,
        NoOpMiddleware<<FakeRelativeClock as Clock>::Instant>,
    >,
    last: Option<DateTime<Utc>>,
}

impl RateLimiter {
    pub fn new(rate: u32) -> Self {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN));
        Self {
            rate,
            limiter: governor::RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            last: None,
        }
    }

    /// Takes one send now, or says when the next one is free.
    pub fn take(&mut self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        match self.last.map(|last| (now - last).to_std()) {
            // Capped: the fake clock counts nanoseconds in a u64.
            Some(Ok(step)) => self.clock.advance(step.min(MAX_STEP)),
            // The wall clock stepped back: forget the debt rather than stall.
            Some(Err(_)) => *self = Self::new(self.rate),
            None => {}
        }
        self.last = Some(now);
        self.limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            TimeDelta::from_std(wait)
                .ok()
                .and_then(|wait| now.checked_add_signed(wait))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    }
}

/// Far longer than any wait the limiter can ask for.
const MAX_STEP: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    const SCHEDULE: [Duration; 3] = [
        Duration::from_secs(60),
        Duration::from_secs(300),
        Duration::from_secs(900),
    ];

    /// When attempt `attempts + 1` is due, without jitter, after one that
    /// finished at `now` (the first attempt was at 0 s).
    fn next(attempts: u32, retry_after: Option<u64>, now: i64) -> Option<DateTime<Utc>> {
        let retry_after = retry_after.map(Duration::from_secs);
        next_attempt_at(&SCHEDULE, 0.0, 0.0, t(0), attempts, retry_after, t(now))
    }

    #[test]
    fn offsets_count_from_the_first_attempt() {
        assert_eq!(next(1, None, 1), Some(t(60)));
        assert_eq!(next(2, None, 61), Some(t(300)));
        assert_eq!(next(3, None, 301), Some(t(900)));
        assert_eq!(next(4, None, 901), None);
        // An attempt that ran late does not schedule the next one in the past.
        assert_eq!(next(2, None, 400), Some(t(400)));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let early = next_attempt_at(&SCHEDULE, 0.1, -1.0, t(0), 1, None, t(0)).unwrap();
        let late = next_attempt_at(&SCHEDULE, 0.1, 1.0, t(0), 1, None, t(0)).unwrap();
        assert_eq!(early, t(54));
        assert_eq!(late, t(66));
    }

    #[test]
    fn a_later_retry_after_wins_an_earlier_one_does_not() {
        assert_eq!(next(1, Some(120), 1), Some(t(121)));
        assert_eq!(next(1, Some(5), 1), Some(t(60)));
    }

    #[test]
    fn retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 20, 0, 0).unwrap();
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 20:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        // The obsolete forms RFC 9110 still asks receivers to accept.
        assert_eq!(
            parse_retry_after("Sunday, 29-Nov-26 20:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 19:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn statuses_classify() {
        assert_eq!(OutcomeKind::of_status(204), OutcomeKind::Success);
        assert_eq!(OutcomeKind::of_status(429), OutcomeKind::RateLimited);
        assert_eq!(OutcomeKind::of_status(500), OutcomeKind::HttpError);
        assert_eq!(OutcomeKind::of_status(301), OutcomeKind::HttpError);
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_spaces_sends() {
        let ms = |n| t(0) + TimeDelta::milliseconds(n);
        let mut limiter = RateLimiter::new(4);
        for _ in 0..4 {
            assert_eq!(limiter.take(ms(0)), Ok(()));
        }
        assert_eq!(limiter.take(ms(0)), Err(ms(250)));
        assert_eq!(limiter.take(ms(250)), Ok(()));
        assert_eq!(limiter.take(ms(300)), Err(ms(500)));
        // A wall clock stepped back an hour does not stall sends for an hour.
        assert_eq!(limiter.take(ms(-3_600_000)), Ok(()));
    }
}
