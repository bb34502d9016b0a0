use super::*;

const NODE: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0abc_def0_1234);
const T: i64 = 1_790_000_040_000; // 40 s into a bucket

fn change(n: u16, at_ms: i64) -> Change {
    let key = format!("code{n}");
    Change::new(ChangeKind::LinkUpserted, key, NODE, at_ms * 1_000_000, n)
}

/// The table: what a read of `plan` returns from the rows visible now.
fn read(table: &[Change], plan: &ReadPlan) -> Vec<Change> {
    table
        .iter()
        .filter(|c| plan.buckets.contains(&c.bucket()) && c.at_ms() >= plan.from_ms)
        .cloned()
        .collect()
}

/// One tail step at `now`: plan, read, accept, advance; the keys delivered.
fn poll(cursor: &mut FeedCursor, table: &[Change], now: i64) -> Vec<String> {
    let plan = cursor.plan(now);
    assert!(!plan.resync);
    let fresh = cursor.accept(read(table, &plan));
    cursor.advance(now);
    fresh.into_iter().map(|c| c.key).collect()
}

#[test]
fn kinds_and_rows_round_trip() {
    for kind in ChangeKind::ALL {
        assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
    }
    let c = Change::new(
        ChangeKind::EndpointDeleted,
        "e1".into(),
        NODE,
        T * 1_000_000,
        7,
    );
    let (bucket, ts, kind, key, node) = c.encode();
    assert_eq!(bucket, T / BUCKET_MS);
    assert_eq!(
        Change::decode(ts, kind, key.to_string(), node),
        Ok(c.clone())
    );
    let bad = Change::decode(ts, "link.moved", "x".into(), node).unwrap_err();
    assert!(bad.contains("unknown kind `link.moved`"), "{bad}");
    assert!(
        Change::decode(NODE, kind, "x".into(), node).is_err(),
        "a v7 id is not a ts"
    );
}

#[test]
fn timeuuids_keep_their_time_and_order() {
    let a = timeuuid(T * 1_000_000 + 123_400, 1, NODE);
    let b = timeuuid(T * 1_000_000 + 123_500, 1, NODE);
    assert_eq!(a.get_version_num(), 1);
    assert_eq!(timeuuid_millis(a), T);
    assert_ne!(a, b);
    assert_ne!(
        a,
        timeuuid(T * 1_000_000 + 123_400, 2, NODE),
        "clock_seq tells apart"
    );
    assert_eq!(timeuuid_millis(NODE), 0);
    assert_eq!(bucket_of(-1), -1);
}

#[test]
fn each_change_comes_out_once_across_a_bucket_boundary() {
    let edge = (T / BUCKET_MS + 1) * BUCKET_MS;
    let mut cursor = FeedCursor::new(edge - 1000, Duration::from_secs(2), 1000);
    let mut table = vec![change(1, edge - 300)];
    assert_eq!(poll(&mut cursor, &table, edge - 250), vec!["code1"]);
    table.push(change(2, edge - 1));
    table.push(change(3, edge));
    let plan = cursor.plan(edge + 10);
    assert_eq!(plan.buckets, bucket_of(edge - 1)..=bucket_of(edge));
    assert_eq!(poll(&mut cursor, &table, edge + 10), vec!["code2", "code3"]);
    table.push(change(4, edge + 200));
    assert_eq!(poll(&mut cursor, &table, edge + 260), vec!["code4"]);
    assert!(poll(&mut cursor, &table, edge + 510).is_empty());
}

#[test]
fn a_row_that_shows_up_late_within_grace_comes_out_once() {
    let mut cursor = FeedCursor::new(T, Duration::from_secs(2), 1000);
    let mut table = vec![change(1, T + 100)];
    assert_eq!(poll(&mut cursor, &table, T + 250), vec!["code1"]);
    // Written at T + 50 by a slow node, visible only now, after a later row.
    table.push(change(2, T + 400));
    table.push(change(3, T + 50));
    assert_eq!(poll(&mut cursor, &table, T + 500), vec!["code3", "code2"]);
    assert!(poll(&mut cursor, &table, T + 750).is_empty());
    assert!(poll(&mut cursor, &table, T + 1000).is_empty());
}

#[test]
fn a_failed_read_is_retried_from_the_same_place() {
    let mut cursor = FeedCursor::new(T, Duration::from_secs(2), 1000);
    let table = vec![change(1, T + 100)];
    // Read at T + 250 failed: no advance. 10 s later the row is still read.
    let plan = cursor.plan(T + 10_250);
    assert!(plan.from_ms <= T + 100);
    assert_eq!(poll(&mut cursor, &table, T + 10_250), vec!["code1"]);
}

#[test]
fn the_seen_set_is_pruned_and_capped() {
    let mut cursor = FeedCursor::new(T, Duration::from_secs(2), 3);
    let table: Vec<Change> = (0..5).map(|n| change(n, T + i64::from(n))).collect();
    assert_eq!(poll(&mut cursor, &table, T + 10).len(), 5);
    assert_eq!(cursor.untracked, 2);
    assert_eq!(cursor.seen.len(), 3);
    cursor.advance(T + 2_100);
    assert!(
        cursor.seen.is_empty(),
        "entries before the next read's start go"
    );
}

#[test]
fn a_cursor_behind_the_retention_asks_for_a_resync() {
    let mut cursor = FeedCursor::new(T, Duration::from_secs(2), 10);
    let later = T + RETENTION.as_millis() as i64;
    let plan = cursor.plan(later);
    assert!(plan.resync);
    assert!(plan.buckets.clone().count() <= (RETENTION.as_millis() as i64 / BUCKET_MS) as usize);
    cursor.reset(later);
    assert!(!cursor.plan(later + 250).resync);
}
