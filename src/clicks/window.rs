//! When a click shard writes: at once when it has been quiet, otherwise at
//! the end of the batch window that began with its last write, so lone clicks
//! are not held back and clicks under load go out in batches.

use std::time::Duration;

/// How long a woken shard waits before it writes: not at all when the queue
/// holds a full batch or the shard has been quiet for a whole window (a lone
/// click is not held back), otherwise until the window that began with the
/// last drain is over, so that under load clicks go out in batches.
pub(super) fn flush_delay(
    last_drain: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
    queued: usize,
    interval: Duration,
    max_batch: usize,
) -> Option<Duration> {
    if queued >= max_batch {
        return None;
    }
    let since = now.saturating_duration_since(last_drain?);
    interval.checked_sub(since).filter(|w| !w.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const WINDOW: Duration = Duration::from_millis(5);

    #[test]
    fn a_quiet_shard_writes_at_once() {
        let now = Instant::now();
        assert_eq!(flush_delay(None, now, 1, WINDOW, 100), None);
        let long_ago = now - Duration::from_millis(20);
        assert_eq!(flush_delay(Some(long_ago), now, 1, WINDOW, 100), None);
    }

    #[test]
    fn under_load_a_shard_waits_for_the_rest_of_the_window() {
        let now = Instant::now();
        let last = now - Duration::from_millis(2);
        assert_eq!(
            flush_delay(Some(last), now, 10, WINDOW, 100),
            Some(Duration::from_millis(3))
        );
        assert_eq!(flush_delay(Some(now), now, 10, WINDOW, 100), Some(WINDOW));
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let now = Instant::now();
        assert_eq!(flush_delay(Some(now), now, 100, WINDOW, 100), None);
    }
}
