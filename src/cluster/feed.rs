//! The change feed: every API write (link, endpoint, account, key) appends one
//! row to a one-minute bucket; every node tails the recent buckets (~250 ms)
//! and acts on each change once (cache invalidation, endpoint actor start/stop/
//! reload).
//!
//! Rows carry a version-1 timeuuid made from the writer's clock. A row can
//! become visible after later ones (a slow write, clock skew between nodes), so
//! each read starts `grace` before the previous read's time and a small seen-set
//! drops what was already delivered: each change comes out exactly once if it
//! becomes readable within `grace` of its timestamp (at least once past the
//! seen-set's cap). Rows expire after [`RETENTION`]; a node that fell further
//! behind is told to resync (reload everything) instead.

use std::{collections::BTreeSet, ops::RangeInclusive, time::Duration};

use uuid::{Builder, Uuid};

/// Width of one feed partition.
pub const BUCKET_MS: i64 = 60_000;
/// Rows' TTL. Hours: a node paused for less than this catches up by reading.
pub const RETENTION: Duration = Duration::from_secs(3 * 3600);
/// 100 ns intervals between 1582-10-15 (the UUID epoch) and 1970-01-01.
const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    LinkUpserted,
    LinkDeleted,
    EndpointUpserted,
    EndpointDeleted,
    AccountUpserted,
    AccountDeleted,
    KeyUpserted,
    KeyDeleted,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::LinkUpserted,
        ChangeKind::LinkDeleted,
        ChangeKind::EndpointUpserted,
        ChangeKind::EndpointDeleted,
        ChangeKind::AccountUpserted,
        ChangeKind::AccountDeleted,
        ChangeKind::KeyUpserted,
        ChangeKind::KeyDeleted,
    ];

    /// The `kind` column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::LinkUpserted => "link.upserted",
            ChangeKind::LinkDeleted => "link.deleted",
            ChangeKind::EndpointUpserted => "endpoint.upserted",
            ChangeKind::EndpointDeleted => "endpoint.deleted",
            ChangeKind::AccountUpserted => "account.upserted",
            ChangeKind::AccountDeleted => "account.deleted",
            ChangeKind::KeyUpserted => "key.upserted",
            ChangeKind::KeyDeleted => "key.deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One feed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// A version-1 timeuuid: the write's time, unique per change.
    pub id: Uuid,
    pub kind: ChangeKind,
    /// What changed: a link code, an endpoint or account id, a key's hash.
    pub key: String,
    /// The node that made the change.
    pub node: Uuid,
}

impl Change {
    /// A change made at `unix_nanos`; `clock_seq` (random) tells apart changes
    /// one node makes in the same 100 ns.
    pub fn new(kind: ChangeKind, key: String, node: Uuid, unix_nanos: i64, clock_seq: u16) -> Self {
        Self {
            id: timeuuid(unix_nanos, clock_seq, node),
            kind,
            key,
            node,
        }
    }

    /// Unix milliseconds of the change.
    pub fn at_ms(&self) -> i64 {
        timeuuid_millis(self.id)
    }

    pub fn bucket(&self) -> i64 {
        bucket_of(self.at_ms())
    }

    /// The row's columns: (bucket, ts, kind, key, node).
    pub fn encode(&self) -> (i64, Uuid, &'static str, &str, Uuid) {
        (
            self.bucket(),
            self.id,
            self.kind.as_str(),
            &self.key,
            self.node,
        )
    }

    /// From the columns (ts, kind, key, node); the error names the bad field.
    pub fn decode(ts: Uuid, kind: &str, key: String, node: Uuid) -> Result<Self, String> {
        if ts.get_version_num() != 1 {
            return Err(format!("change feed ts {ts}: not a version-1 timeuuid"));
        }
        let kind = ChangeKind::parse(kind)
            .ok_or_else(|| format!("change feed row {ts}: unknown kind `{kind}`"))?;
        Ok(Self {
            id: ts,
            kind,
            key,
            node,
        })
    }
}

pub fn bucket_of(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(BUCKET_MS)
}

/// A version-1 timeuuid for `unix_nanos` (100 ns resolution); its node field is
/// the low 48 bits of `node` (random in a UUIDv7).
pub fn timeuuid(unix_nanos: i64, clock_seq: u16, node: Uuid) -> Uuid {
    let ticks = (unix_nanos.max(0) as u64 / 100).wrapping_add(GREGORIAN_OFFSET);
    let mut node_id = [0u8; 6];
    node_id.copy_from_slice(&node.as_bytes()[10..]);
    Builder::from_gregorian_timestamp(ticks, clock_seq, &node_id).into_uuid()
}

/// Unix milliseconds of a timeuuid (0 for any other UUID).
pub fn timeuuid_millis(id: Uuid) -> i64 {
    if id.get_version_num() != 1 {
        return 0;
    }
    id.get_timestamp().map_or(0, |ts| {
        let (secs, nanos) = ts.to_unix();
        secs as i64 * 1000 + i64::from(nanos / 1_000_000)
    })
}

/// Which rows the next read takes: every bucket in `buckets`, rows at or after
/// `from_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    pub from_ms: i64,
    pub buckets: RangeInclusive<i64>,
    /// The rows since the last read have expired: reload all state, then
    /// [`FeedCursor::reset`].
    pub resync: bool,
}

/// One node's position in the feed.
#[derive(Debug)]
pub struct FeedCursor {
    /// The next read takes rows at or after this.
    from_ms: i64,
    grace_ms: i64,
    /// Changes already delivered at or after `from_ms`, by (time, id).
    seen: BTreeSet<(i64, Uuid)>,
    cap: usize,
    /// Changes delivered without room in `seen` (may come out again).
    pub untracked: u64,
}

impl FeedCursor {
    /// A cursor for a node that loaded its state at `now_ms`.
    pub fn new(now_ms: i64, grace: Duration, cap: usize) -> Self {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
        Self {
            from_ms: now_ms - grace_ms,
            grace_ms,
            seen: BTreeSet::new(),
            cap,
            untracked: 0,
        }
    }

    pub fn plan(&self, now_ms: i64) -> ReadPlan {
        let retained_from = now_ms - RETENTION.as_millis() as i64 + BUCKET_MS;
        let from_ms = self.from_ms.max(retained_from);
        ReadPlan {
            from_ms,
            buckets: bucket_of(from_ms)..=bucket_of(now_ms.max(from_ms)),
            resync: self.from_ms < retained_from,
        }
    }

    /// Takes the rows a read returned; gives back the ones not delivered
    /// before, oldest first.
    pub fn accept(&mut self, rows: impl IntoIterator<Item = Change>) -> Vec<Change> {
        let mut fresh: Vec<Change> = Vec::new();
        for change in rows {
            let at = (change.at_ms(), change.id);
            if at.0 < self.from_ms || self.seen.contains(&at) {
                continue;
            }
            if self.seen.len() < self.cap {
                self.seen.insert(at);
            } else {
                self.untracked += 1;
            }
            fresh.push(change);
        }
        fresh.sort_by_key(|c| (c.at_ms(), c.id));
        fresh
    }

    /// Every planned bucket was read completely as of `read_at_ms`: the next
    /// read starts `grace` before it, and older seen entries go.
    pub fn advance(&mut self, read_at_ms: i64) {
        self.from_ms = self.from_ms.max(read_at_ms - self.grace_ms);
        self.seen = self.seen.split_off(&(self.from_ms, Uuid::nil()));
    }

    /// After a resync (all state reloaded at `now_ms`): start over from there.
    pub fn reset(&mut self, now_ms: i64) {
        self.from_ms = now_ms - self.grace_ms;
        self.seen.clear();
    }
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
