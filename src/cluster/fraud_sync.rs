//! The fraud detector's cluster-mode counting: clicks are counted per second
//! here ([`LocalCounts`]), flushed to the shared table every flush period, and
//! each key this node wrote is summed over every node's rows. Every node that
//! finds a key over the threshold decides the same way (the link's policy);
//! the one node that wins a short LWT claim on it records the incident (and
//! disables the link). A blocked range is written beside its counts (a row at
//! [`BLOCK_SECOND`] holding the deadline, TTL to it), so a node that sees the
//! range's clicks only later, after the window has moved on, blocks it too.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::Utc;

use futures::StreamExt;

use super::{
    cql::ClusterCql,
    fraud::{BLOCK_SECOND, LocalCounts, blocked_until, decide, window},
};
use crate::{
    fraud::window::WindowKey,
    metrics::events::{ClusterCallFailed, ClusterOp},
};

/// A fraud table call failed: logged and counted, the flush goes on.
fn count_failed(error: &super::cql::ClusterError) {
    ClusterCallFailed {
        operation: ClusterOp::FraudCounts,
        error,
    }
    .emit();
}

/// The fraud table partition `(code, GRACE_RANGE)` holds a link's grace row.
const GRACE_RANGE: &str = "grace";

/// Window reads in flight at once per flush.
const CONCURRENT_READS: usize = 16;

/// A key over the threshold cluster-wide.
#[derive(Debug)]
pub struct Over {
    pub key: WindowKey,
    pub clicks: u64,
    /// This node won the claim: it records the incident.
    pub recorder: bool,
}

/// What one flush found.
#[derive(Debug, Default)]
pub struct Flushed {
    pub over: Vec<Over>,
    /// Keys another node blocked, with the unix second the block ends.
    pub blocked: Vec<(WindowKey, u64)>,
}

pub struct SharedCounts {
    cql: Arc<ClusterCql>,
    local: LocalCounts,
    window_secs: i64,
    threshold: u32,
    /// How often [`SharedCounts::flush`] should run.
    pub flush_every: Duration,
    /// Keys found over the threshold, by the second it was seen: not claimed
    /// again while that second is in the window (bounded like `local`).
    tripped: HashMap<WindowKey, i64>,
    /// Links re-enabled (or changed) at a second: the shared rows up to it no
    /// longer count, as a re-enabled link starts a fresh window on one node.
    reset: HashMap<Arc<str>, i64>,
}

impl SharedCounts {
    pub fn new(
        cql: Arc<ClusterCql>,
        window_secs: u64,
        threshold: u32,
        cap: usize,
        flush_every: Duration,
    ) -> Self {
        Self {
            cql,
            local: LocalCounts::new(window_secs, cap),
            window_secs: i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX),
            threshold,
            flush_every,
            tripped: HashMap::new(),
            reset: HashMap::new(),
        }
    }

    /// `code` was re-enabled at `now_sec`: count its clicks from the next second.
    pub fn forget(&mut self, code: &str, now_sec: i64) {
        self.tripped.retain(|key, _| &*key.code != code);
        self.reset.insert(Arc::from(code), now_sec);
    }

    /// Counts one click on `key` at unix second `second`.
    pub fn add(&mut self, key: WindowKey, second: i64) {
        self.local.add(key, second);
    }

    /// Clicks not counted because the local cap was reached.
    pub fn untracked(&self) -> u64 {
        self.local.untracked
    }

    /// Tells every node that `key` is blocked until unix second `until`.
    pub async fn share_block(&self, key: &WindowKey, until: u64) {
        let range = key.range.to_string();
        self.mark(&key.code, &range, until).await;
    }

    /// Tells every node that `code` is in its grace period until `until`
    /// (a partition of its own beside the link's ranges).
    pub async fn share_grace(&self, code: &str, until: u64) {
        self.mark(code, GRACE_RANGE, until).await;
    }

    /// The end of `code`'s grace period, as any node set it.
    pub async fn grace(&self, code: &str, now_sec: i64) -> Option<u64> {
        let seconds = BLOCK_SECOND..=BLOCK_SECOND;
        match self.cql.fraud_rows(code, GRACE_RANGE, seconds).await {
            Ok(rows) => blocked_until(&rows, now_sec),
            Err(e) => {
                count_failed(&e);
                None
            }
        }
    }

    async fn mark(&self, code: &str, range: &str, until: u64) {
        let left = until.saturating_sub(Utc::now().timestamp().max(0) as u64);
        let until = i64::try_from(until).unwrap_or(i64::MAX);
        let ttl = Duration::from_secs(left.max(1));
        let written = self
            .cql
            .write_fraud_mark(code, range, BLOCK_SECOND, until, ttl);
        if let Err(e) = written.await {
            count_failed(&e);
        }
    }

    /// Writes this node's changed counts, then sums each written key over every
    /// node: the keys over the threshold with their cluster-wide click count,
    /// and the keys some node has blocked.
    pub async fn flush(&mut self, now_sec: i64) -> Flushed {
        let rows = self.local.flush(now_sec);
        if rows.is_empty() {
            return Flushed::default();
        }
        if let Err(e) = self.cql.write_fraud_counts(&rows).await {
            count_failed(&e);
            self.local.unflush(&rows);
            return Flushed::default();
        }
        let oldest = *window(now_sec, self.window_secs).start();
        self.tripped.retain(|_, at| *at >= oldest);
        self.reset.retain(|_, at| *at >= oldest);
        let keys: HashSet<WindowKey> = rows
            .into_iter()
            .map(|r| r.key)
            .filter(|k| !self.tripped.contains_key(k))
            .collect();
        let (cql, window_secs, threshold) = (&self.cql, self.window_secs, self.threshold);
        let reset = &self.reset;
        // Read up to the block row, past every second.
        let read_until = BLOCK_SECOND;
        let found: Vec<(WindowKey, Option<u64>, Option<u64>)> = futures::stream::iter(keys)
            .map(|key| async move {
                let span = *window(now_sec, window_secs).start()..=read_until;
                match cql.window_counts(&key, span).await {
                    Ok(counts) => {
                        let blocked = blocked_until(&counts, now_sec);
                        let since = reset.get(&key.code).copied().unwrap_or(i64::MIN);
                        let counts = counts.into_iter().filter(|(second, _)| *second > since);
                        let (total, over) = decide(counts, now_sec, window_secs, threshold);
                        (over || blocked.is_some()).then_some((key, over.then_some(total), blocked))
                    }
                    Err(e) => {
                        count_failed(&e);
                        None
                    }
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .filter_map(|found| async move { found })
            .collect()
            .await;
        let mut flushed = Flushed::default();
        for (key, total, blocked) in found {
            if let Some(until) = blocked {
                flushed.blocked.push((key.clone(), until));
            }
            let Some(clicks) = total else { continue };
            self.tripped.insert(key.clone(), now_sec);
            // Every node that wrote the key sees it over; one records.
            let claim = format!("fraud:{}:{}", key.code, key.range);
            let recorder = match self.cql.claim_once(&claim).await {
                Ok(won) => won,
                Err(e) => {
                    count_failed(&e);
                    false
                }
            };
            flushed.over.push(Over {
                key,
                clicks,
                recorder,
            });
        }
        flushed
    }
}
