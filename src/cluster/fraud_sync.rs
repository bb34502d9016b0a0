//! The fraud detector's cluster-mode counting: clicks are counted per second
//! here ([`LocalCounts`]), flushed to the shared table every flush period, and
//! each key this node wrote is summed over every node's rows. A key over the
//! threshold is acted on by the one node that wins a short LWT claim on it.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;

use super::{
    cql::ClusterCql,
    fraud::{LocalCounts, decide, window},
};
use crate::{
    fraud::window::WindowKey,
    metrics::events::{ClusterCallFailed, ClusterOp},
};

/// Window reads in flight at once per flush.
const CONCURRENT_READS: usize = 16;

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

    /// Writes this node's changed counts, then sums each written key over every
    /// node: the keys over the threshold that this node is to act on, with
    /// their cluster-wide click count.
    pub async fn flush(&mut self, now_sec: i64) -> Vec<(WindowKey, u64)> {
        let rows = self.local.flush(now_sec);
        if rows.is_empty() {
            return Vec::new();
        }
        if let Err(e) = self.cql.write_fraud_counts(&rows).await {
            ClusterCallFailed {
                operation: ClusterOp::FraudCounts,
                error: &e,
            }
            .emit();
            self.local.unflush(&rows);
            return Vec::new();
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
        let over: Vec<(WindowKey, u64)> = futures::stream::iter(keys)
            .map(|key| async move {
                let span = window(now_sec, window_secs);
                match cql.window_counts(&key, span).await {
                    Ok(counts) => {
                        let since = reset.get(&key.code).copied().unwrap_or(i64::MIN);
                        let counts = counts.into_iter().filter(|(second, _)| *second > since);
                        let (total, over) = decide(counts, now_sec, window_secs, threshold);
                        over.then_some((key, total))
                    }
                    Err(e) => {
                        ClusterCallFailed {
                            operation: ClusterOp::FraudCounts,
                            error: &e,
                        }
                        .emit();
                        None
                    }
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .filter_map(|found| async move { found })
            .collect()
            .await;
        let mut mine = Vec::new();
        for (key, total) in over {
            self.tripped.insert(key.clone(), now_sec);
            // Every node that wrote the key sees it over; one acts.
            let claim = format!("fraud:{}:{}", key.code, key.range);
            match self.cql.claim_once(&claim).await {
                Ok(true) => mine.push((key, total)),
                Ok(false) => {}
                Err(e) => ClusterCallFailed {
                    operation: ClusterOp::FraudCounts,
                    error: &e,
                }
                .emit(),
            }
        }
        mine
    }
}
