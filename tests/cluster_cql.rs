//! The cluster tables against a real CQL server (`RELURL_TEST_SCYLLA`): lease
//! contention and fencing, TTL expiry of leases and heartbeats, the change feed
//! across buckets, and fraud counts summed over nodes. Each test uses a keyspace
//! of its own and two `ClusterCql` "nodes" on it.

mod common;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use common::cql;
use relurl::{
    cluster::{
        cql::{ClusterCql, ClusterOptions},
        feed::{BUCKET_MS, Change, ChangeKind, FeedCursor},
        fraud::{BLOCK_SECOND, FraudCount, blocked_until, decide},
        lease::{Holder, LeaseName, LeaseOutcome},
    },
    fraud::window::WindowKey,
};
use scylla::client::{session::Session, session_builder::SessionBuilder};
use tokio::time::{Instant, sleep};
use uuid::Uuid;

struct Keyspace {
    session: Arc<Session>,
    name: String,
}

impl Keyspace {
    async fn fresh() -> Option<Self> {
        let node = cql::node()?;
        let session = SessionBuilder::new()
            .known_node(&node)
            .build()
            .await
            .unwrap_or_else(|e| panic!("RELURL_TEST_SCYLLA={node}: cannot connect: {e}"));
        let name = format!("relurl_cluster_{}", Uuid::now_v7().simple());
        let create = format!(
            "CREATE KEYSPACE {name} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        );
        session
            .query_unpaged(create, ())
            .await
            .expect("create keyspace");
        Some(Self {
            session: Arc::new(session),
            name,
        })
    }

    async fn node(&self, lease_ttl: Duration) -> ClusterCql {
        let options = ClusterOptions {
            node_id: Uuid::now_v7(),
            lease_ttl,
            fraud_window: Duration::from_secs(60),
        };
        ClusterCql::open(self.session.clone(), &self.name, options)
            .await
            .expect("open cluster tables")
    }

    /// A fresh keyspace and two nodes on it with this lease TTL.
    async fn pair(lease_ttl: Duration) -> Option<(Self, ClusterCql, ClusterCql)> {
        let ks = Self::fresh().await?;
        let (a, b) = (ks.node(lease_ttl).await, ks.node(lease_ttl).await);
        Some((ks, a, b))
    }

    async fn drop(self) {
        let _ = self
            .session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.name), ())
            .await;
    }
}

/// Polls `check` every 100 ms until it holds; panics after 20 s.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn two_nodes_contend_for_one_lease_and_exactly_one_wins() {
    let Some((ks, a, b)) = Keyspace::pair(TTL).await else {
        return;
    };
    let lease = LeaseName::Endpoint(Uuid::now_v7());
    let (ra, rb) = tokio::join!(a.acquire_lease(lease, 1), b.acquire_lease(lease, 1));
    let (ra, rb) = (ra.expect("answer to a"), rb.expect("answer to b"));
    let (winner, loser_saw) = match (ra, rb) {
        (LeaseOutcome::Applied, other) => (a.node_id(), other),
        (other, LeaseOutcome::Applied) => (b.node_id(), other),
        both => panic!("exactly one must win: {both:?}"),
    };
    let expected = Holder {
        owner: winner,
        epoch: 1,
    };
    assert_eq!(loser_saw, LeaseOutcome::Refused(Some(expected)));
    ks.drop().await;
}

#[tokio::test]
async fn renewals_and_releases_are_fenced_by_owner_and_epoch() {
    let Some((ks, a, b)) = Keyspace::pair(TTL).await else {
        return;
    };
    let lease = LeaseName::Expiry;
    let held = Holder {
        owner: a.node_id(),
        epoch: 3,
    };
    assert_eq!(
        a.acquire_lease(lease, 3).await.unwrap(),
        LeaseOutcome::Applied
    );
    assert_eq!(
        a.renew_lease(lease, 3).await.unwrap(),
        LeaseOutcome::Applied
    );
    let refused = LeaseOutcome::Refused(Some(held));
    assert_eq!(
        a.renew_lease(lease, 2).await.unwrap(),
        refused,
        "stale epoch"
    );
    assert_eq!(
        b.renew_lease(lease, 3).await.unwrap(),
        refused,
        "not the owner"
    );
    assert_eq!(b.release_lease(lease, 3).await.unwrap(), refused);
    assert_eq!(a.release_lease(lease, 2).await.unwrap(), refused);
    assert_eq!(
        a.release_lease(lease, 3).await.unwrap(),
        LeaseOutcome::Applied
    );
    assert_eq!(
        a.renew_lease(lease, 3).await.unwrap(),
        LeaseOutcome::Refused(None),
        "a released lease cannot be renewed back"
    );
    assert_eq!(
        b.acquire_lease(lease, 4).await.unwrap(),
        LeaseOutcome::Applied
    );
    ks.drop().await;
}

#[tokio::test]
async fn a_renewed_lease_outlives_its_ttl_and_a_lapsed_one_is_taken_over() {
    let ttl = Duration::from_secs(2);
    let Some((ks, a, b)) = Keyspace::pair(ttl).await else {
        return;
    };
    let lease = LeaseName::Endpoint(Uuid::now_v7());
    let held_by_a = |outcome| matches!(outcome, LeaseOutcome::Refused(Some(h)) if h == Holder { owner: a.node_id(), epoch: 1 });
    assert_eq!(
        a.acquire_lease(lease, 1).await.unwrap(),
        LeaseOutcome::Applied
    );
    // The insert's own TTL (row marker) runs out; the renewed cells keep the row.
    let until = Instant::now() + ttl * 5 / 2;
    while Instant::now() < until {
        sleep(ttl / 4).await;
        assert_eq!(
            a.renew_lease(lease, 1).await.unwrap(),
            LeaseOutcome::Applied
        );
        assert!(held_by_a(b.acquire_lease(lease, 1).await.unwrap()));
    }
    // A stops renewing (it died); B retries, as its lease table would, one
    // epoch above the one it saw.
    eventually("the lapsed lease is b's", async || {
        b.acquire_lease(lease, 2).await.unwrap() == LeaseOutcome::Applied
    })
    .await;
    let now_b = Holder {
        owner: b.node_id(),
        epoch: 2,
    };
    assert_eq!(
        a.renew_lease(lease, 1).await.unwrap(),
        LeaseOutcome::Refused(Some(now_b)),
        "the old holder is fenced off"
    );
    ks.drop().await;
}

#[tokio::test]
async fn a_node_without_heartbeats_leaves_the_live_set_after_the_ttl() {
    let ttl = Duration::from_secs(2);
    let Some((ks, a, b)) = Keyspace::pair(ttl).await else {
        return;
    };
    let started = Utc::now();
    a.heartbeat(started, "10.0.0.1:8080").await.unwrap();
    b.heartbeat(started, "10.0.0.2:8080").await.unwrap();
    let live = a.live_nodes().await.unwrap();
    assert_eq!(live.len(), 2);
    let a_row = live
        .iter()
        .find(|n| n.node_id == a.node_id())
        .expect("a is live");
    assert_eq!(a_row.addr, "10.0.0.1:8080");
    assert_eq!(
        a_row.started_at.timestamp_millis(),
        started.timestamp_millis()
    );
    // Only B keeps beating.
    eventually("a's heartbeat expired", async || {
        b.heartbeat(started, "10.0.0.2:8080").await.unwrap();
        let ids: Vec<Uuid> = b
            .live_nodes()
            .await
            .unwrap()
            .iter()
            .map(|n| n.node_id)
            .collect();
        assert!(ids.contains(&b.node_id()), "b kept beating");
        !ids.contains(&a.node_id())
    })
    .await;
    ks.drop().await;
}

#[tokio::test]
async fn the_change_feed_round_trips_across_two_buckets() {
    let Some((ks, a, b)) = Keyspace::pair(TTL).await else {
        return;
    };
    let edge = (Utc::now().timestamp_millis() / BUCKET_MS) * BUCKET_MS;
    let at = |ms: i64, key: &str, seq: u16| {
        let kind = ChangeKind::EndpointUpserted;
        Change::new(kind, key.to_string(), a.node_id(), ms * 1_000_000, seq)
    };
    let written = [at(edge - 10, "before", 1), at(edge + 10, "after", 2)];
    for change in &written {
        a.append_change(change).await.unwrap();
    }
    // B tails from just before the first change.
    let mut cursor = FeedCursor::new(edge - 1000, Duration::from_secs(2), 1000);
    let mut poll = async |now: i64| -> Vec<Change> {
        let plan = cursor.plan(now);
        let mut rows = Vec::new();
        for bucket in plan.buckets.clone() {
            rows.extend(b.read_changes(bucket, plan.from_ms, 1000).await.unwrap());
        }
        let fresh = cursor.accept(rows);
        cursor.advance(now);
        fresh
    };
    assert_eq!(poll(edge + 500).await, written.to_vec());
    assert!(poll(edge + 750).await.is_empty(), "each change once");
    ks.drop().await;
}

#[tokio::test]
async fn fraud_counts_from_two_nodes_sum_over_the_window() {
    let Some((ks, a, b)) = Keyspace::pair(TTL).await else {
        return;
    };
    let key = WindowKey {
        code: Arc::from("hot"),
        range: "10.1.2.0/24".parse().unwrap(),
    };
    let row = |second: i64, count: i64| FraudCount {
        key: key.clone(),
        second,
        count,
    };
    a.write_fraud_counts(&[row(50, 1000), row(100, 3), row(101, 2)])
        .await
        .unwrap();
    b.write_fraud_counts(&[row(101, 4)]).await.unwrap();
    // A's running count of second 101 grew: the row is rewritten whole.
    a.write_fraud_counts(&[row(101, 5)]).await.unwrap();
    let window = relurl::cluster::fraud::window(101, 10);
    let mut rows = a.window_counts(&key, window).await.unwrap();
    rows.sort();
    assert_eq!(rows, vec![(100, 3), (101, 4), (101, 5)]);
    assert_eq!(decide(rows.clone(), 101, 10, 11), (12, true));
    assert_eq!(decide(rows, 101, 10, 12), (12, false));

    // B blocks the range: A's next read of the key, past every second, sees it.
    let until = Utc::now().timestamp() + 3600;
    let range = key.range.to_string();
    b.write_fraud_mark(
        "hot",
        &range,
        BLOCK_SECOND,
        until,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let rows = a.window_counts(&key, 92..=BLOCK_SECOND).await.unwrap();
    assert_eq!(blocked_until(&rows, 101), Some(until as u64));
    assert_eq!(decide(rows, 101, 10, 11), (12, true), "never summed");
    ks.drop().await;
}
