//! The cluster tables (`schema.cql`) and every statement on them, prepared once
//! at open. Lease calls are lightweight transactions at SERIAL consistency
//! (linearizable across data centres) and are never retried by the driver;
//! everything else is an idempotent plain write or read.

use std::{ops::RangeInclusive, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use scylla::{
    client::session::Session,
    response::query_result::QueryResult,
    statement::{
        SerialConsistency,
        batch::{Batch, BatchType},
        prepared::PreparedStatement,
    },
    value::{CqlTimestamp, CqlTimeuuid, CqlValue, Row},
};
use uuid::Uuid;

use super::{
    feed::{Change, RETENTION},
    fraud::FraudCount,
    lease::{Holder, LeaseAction, LeaseName, LeaseOutcome},
};
use crate::fraud::window::WindowKey;

const SCHEMA: &str = include_str!("schema.cql");
/// Fraud rows outlive the window by this much (late flushes, clock skew).
const FRAUD_TTL_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[error("cluster: {0}")]
pub struct ClusterError(String);

type Result<T> = std::result::Result<T, ClusterError>;

fn failed(what: &str) -> impl Fn(String) -> ClusterError + '_ {
    move |e| ClusterError(format!("{what}: {e}"))
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// This node (UUIDv7 at start, or `cluster.node_id`).
    pub node_id: Uuid,
    /// TTL of heartbeats and leases (`cluster.lease_ttl`).
    pub lease_ttl: Duration,
    /// `fraud.window`: how long fraud rows must stay.
    pub fraud_window: Duration,
}

/// A live node's heartbeat row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub addr: String,
}

struct Statements {
    heartbeat: PreparedStatement,
    leave: PreparedStatement,
    nodes: PreparedStatement,
    acquire: PreparedStatement,
    renew: PreparedStatement,
    release: PreparedStatement,
    change_insert: PreparedStatement,
    changes_from: PreparedStatement,
    fraud_insert: PreparedStatement,
    fraud_window: PreparedStatement,
}

pub struct ClusterCql {
    session: Arc<Session>,
    node: Uuid,
    st: Statements,
    /// TTLs in whole seconds, rounded up: the database never drops a lease
    /// before the lease table's deadline (`ttl - margin`) has passed.
    lease_ttl: i32,
    feed_ttl: i32,
    fraud_ttl: i32,
}

fn ttl_secs(ttl: Duration) -> i32 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

impl ClusterCql {
    /// Creates the cluster tables in `keyspace` (which must exist: the store
    /// makes it) and prepares every statement.
    pub async fn open(session: Arc<Session>, keyspace: &str, opts: ClusterOptions) -> Result<Self> {
        for statement in schema_statements(keyspace) {
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .map_err(|e| failed(&format!("applying `{statement}`"))(e.to_string()))?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(|e| failed("waiting for schema agreement")(e.to_string()))?;
        let p = async |cql: &str| -> Result<PreparedStatement> {
            let cql = cql.replace("{ks}", keyspace);
            let mut prepared = session
                .prepare(cql.as_str())
                .await
                .map_err(|e| failed(&format!("preparing `{cql}`"))(e.to_string()))?;
            let lwt = cql.contains(" IF ");
            prepared.set_is_idempotent(!lwt);
            if lwt {
                prepared.set_serial_consistency(Some(SerialConsistency::Serial));
            }
            Ok(prepared)
        };
        let st = Statements {
            heartbeat: p(
                "INSERT INTO {ks}.cluster_nodes (node_id, started_at, addr) \
                          VALUES (?, ?, ?) USING TTL ?",
            )
            .await?,
            leave: p("DELETE FROM {ks}.cluster_nodes WHERE node_id = ?").await?,
            nodes: p("SELECT node_id, started_at, addr FROM {ks}.cluster_nodes").await?,
            acquire: p(
                "INSERT INTO {ks}.cluster_leases (name, owner, epoch) VALUES (?, ?, ?) \
                        IF NOT EXISTS USING TTL ?",
            )
            .await?,
            renew: p(
                "UPDATE {ks}.cluster_leases USING TTL ? SET owner = ?, epoch = ? \
                      WHERE name = ? IF owner = ? AND epoch = ?",
            )
            .await?,
            release: p("DELETE FROM {ks}.cluster_leases WHERE name = ? IF owner = ? AND epoch = ?")
                .await?,
            change_insert: p(
                "INSERT INTO {ks}.cluster_changes (bucket, ts, kind, key, node) \
                              VALUES (?, ?, ?, ?, ?) USING TTL ?",
            )
            .await?,
            changes_from: p("SELECT ts, kind, key, node FROM {ks}.cluster_changes \
                             WHERE bucket = ? AND ts >= minTimeuuid(?)")
            .await?,
            fraud_insert: p(
                "INSERT INTO {ks}.cluster_fraud (code, ip_range, second, node, n) \
                             VALUES (?, ?, ?, ?, ?) USING TTL ?",
            )
            .await?,
            fraud_window: p("SELECT second, n FROM {ks}.cluster_fraud \
                             WHERE code = ? AND ip_range = ? AND second >= ? AND second <= ?")
            .await?,
        };
        Ok(Self {
            session,
            node: opts.node_id,
            st,
            lease_ttl: ttl_secs(opts.lease_ttl),
            feed_ttl: ttl_secs(RETENTION),
            fraud_ttl: ttl_secs(opts.fraud_window + FRAUD_TTL_SLACK),
        })
    }

    pub fn node_id(&self) -> Uuid {
        self.node
    }

    // ------------------------------------------------------------ membership

    /// Writes this node's heartbeat row; it disappears `lease_ttl` after the last.
    pub async fn heartbeat(&self, started_at: DateTime<Utc>, addr: &str) -> Result<()> {
        let values = (self.node, started_at, addr, self.lease_ttl);
        self.session
            .execute_unpaged(&self.st.heartbeat, values)
            .await
            .map_err(|e| failed("writing heartbeat")(e.to_string()))?;
        Ok(())
    }

    /// Deletes this node's heartbeat row (graceful stop): the others stop
    /// preferring it at their next heartbeat instead of after `lease_ttl`.
    pub async fn leave(&self) -> Result<()> {
        self.session
            .execute_unpaged(&self.st.leave, (self.node,))
            .await
            .map_err(|e| failed("deleting heartbeat")(e.to_string()))?;
        Ok(())
    }

    /// Nodes whose heartbeat row is present.
    pub async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        let rows: Vec<(Uuid, DateTime<Utc>, String)> = self
            .read_all(&self.st.nodes, (), usize::MAX, "reading live nodes")
            .await?;
        Ok(rows
            .into_iter()
            .map(|(node_id, started_at, addr)| NodeInfo {
                node_id,
                started_at,
                addr,
            })
            .collect())
    }

    // ------------------------------------------------------------ leases

    /// Takes the lease if no one holds it.
    pub async fn acquire_lease(&self, lease: LeaseName, epoch: i64) -> Result<LeaseOutcome> {
        let values = (lease.key(), self.node, epoch, self.lease_ttl);
        self.lwt(&self.st.acquire, values, "acquiring lease").await
    }

    /// Extends the lease's TTL if this node still holds it at `epoch`.
    pub async fn renew_lease(&self, lease: LeaseName, epoch: i64) -> Result<LeaseOutcome> {
        let values = (
            self.lease_ttl,
            self.node,
            epoch,
            lease.key(),
            self.node,
            epoch,
        );
        self.lwt(&self.st.renew, values, "renewing lease").await
    }

    /// Frees the lease if this node still holds it at `epoch`.
    pub async fn release_lease(&self, lease: LeaseName, epoch: i64) -> Result<LeaseOutcome> {
        let values = (lease.key(), self.node, epoch);
        self.lwt(&self.st.release, values, "releasing lease").await
    }

    /// Takes the one-off lease `name` (for `lease_ttl`) if no one holds it:
    /// `true` for the one node that wins.
    pub async fn claim_once(&self, name: &str) -> Result<bool> {
        let values = (name, self.node, 1i64, self.lease_ttl);
        let outcome = self.lwt(&self.st.acquire, values, "claiming").await?;
        Ok(outcome == LeaseOutcome::Applied)
    }

    /// Carries out a lease table's database action; `None` for actor actions.
    pub async fn lease_call(&self, action: LeaseAction) -> Option<LeaseOutcome> {
        let answer = match action {
            LeaseAction::Acquire { lease, epoch } => self.acquire_lease(lease, epoch).await,
            LeaseAction::Renew { lease, epoch } => self.renew_lease(lease, epoch).await,
            LeaseAction::Release { lease, epoch } => self.release_lease(lease, epoch).await,
            LeaseAction::StartActor { .. } | LeaseAction::StopActor { .. } => return None,
        };
        Some(answer.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "lease call without an answer");
            LeaseOutcome::Failed
        }))
    }

    async fn lwt(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        what: &str,
    ) -> Result<LeaseOutcome> {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(|e| failed(what)(e.to_string()))?;
        lease_outcome(result).map_err(failed(what))
    }

    // ------------------------------------------------------------ change feed

    pub async fn append_change(&self, change: &Change) -> Result<()> {
        let (bucket, ts, kind, key, node) = change.encode();
        let values = (
            bucket,
            CqlTimeuuid::from(ts),
            kind,
            key,
            node,
            self.feed_ttl,
        );
        self.session
            .execute_unpaged(&self.st.change_insert, values)
            .await
            .map_err(|e| failed("appending change")(e.to_string()))?;
        Ok(())
    }

    /// Changes in `bucket` at or after `from_ms`, oldest first, at most `limit`:
    /// a full answer means the rest of the bucket was not read.
    pub async fn read_changes(
        &self,
        bucket: i64,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let values = (bucket, CqlTimestamp(from_ms));
        let rows: Vec<(CqlTimeuuid, String, String, Uuid)> = self
            .read_all(&self.st.changes_from, values, limit, "reading changes")
            .await?;
        rows.into_iter()
            .map(|(ts, kind, key, node)| Change::decode(*ts.as_ref(), &kind, key, node))
            .collect::<std::result::Result<_, _>>()
            .map_err(ClusterError)
    }

    // ------------------------------------------------------------ fraud counts

    /// Writes this node's running counts, one unlogged batch per (link, range).
    pub async fn write_fraud_counts(&self, rows: &[FraudCount]) -> Result<()> {
        let mut groups: Vec<&[FraudCount]> = Vec::new();
        let mut rest = rows;
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|r| r.key == first.key).count();
            groups.push(&rest[..n]);
            rest = &rest[n..];
        }
        let batches = groups.into_iter().map(|group| async move {
            let mut batch = Batch::new(BatchType::Unlogged);
            let values: Vec<_> = group
                .iter()
                .map(|r| {
                    batch.append_statement(self.st.fraud_insert.clone());
                    let range = r.key.range.to_string();
                    (
                        r.key.code.to_string(),
                        range,
                        r.second,
                        self.node,
                        r.count,
                        self.fraud_ttl,
                    )
                })
                .collect();
            batch.set_is_idempotent(true);
            self.session.batch(&batch, values).await
        });
        futures::future::try_join_all(batches)
            .await
            .map_err(|e| failed("writing fraud counts")(e.to_string()))?;
        Ok(())
    }

    /// Writes a marker row in the fraud table: `n` = `until` at `second` in the
    /// partition `(code, range)`, gone after `ttl` (a block, a grace period).
    pub async fn write_fraud_mark(
        &self,
        code: &str,
        range: &str,
        second: i64,
        until: i64,
        ttl: Duration,
    ) -> Result<()> {
        let values = (code, range, second, self.node, until, ttl_secs(ttl));
        self.session
            .execute_unpaged(&self.st.fraud_insert, values)
            .await
            .map_err(|e| failed("writing a fraud mark")(e.to_string()))?;
        Ok(())
    }

    /// Every node's `(second, n)` rows of the partition `(code, range)` in `seconds`.
    pub async fn fraud_rows(
        &self,
        code: &str,
        range: &str,
        seconds: RangeInclusive<i64>,
    ) -> Result<Vec<(i64, i64)>> {
        let values = (code, range, *seconds.start(), *seconds.end());
        self.read_all(
            &self.st.fraud_window,
            values,
            usize::MAX,
            "reading fraud rows",
        )
        .await
    }

    /// Every node's `(second, count)` rows of `key` in `seconds`.
    pub async fn window_counts(
        &self,
        key: &WindowKey,
        seconds: RangeInclusive<i64>,
    ) -> Result<Vec<(i64, i64)>> {
        self.fraud_rows(&key.code, &key.range.to_string(), seconds)
            .await
    }

    /// A read of up to `limit` rows, paged.
    async fn read_all<R>(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        limit: usize,
        what: &str,
    ) -> Result<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let pager = self
            .session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(|e| failed(what)(e.to_string()))?;
        let stream = pager
            .rows_stream::<R>()
            .map_err(|e| failed(what)(e.to_string()))?;
        stream
            .take(limit)
            .try_collect()
            .await
            .map_err(|e| failed(what)(e.to_string()))
    }
}

/// The schema's statements with the keyspace filled in, comments dropped.
fn schema_statements(keyspace: &str) -> Vec<String> {
    let text: Vec<&str> = SCHEMA
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect();
    text.join("\n")
        .replace("{{keyspace}}", keyspace)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A lease LWT's answer: applied, or the row's (owner, epoch) as it stands.
fn lease_outcome(result: QueryResult) -> std::result::Result<LeaseOutcome, String> {
    let rows = result.into_rows_result().map_err(|e| e.to_string())?;
    let specs = rows.column_specs();
    let at = |name: &str| specs.get_by_name(name).map(|(i, _)| i);
    let applied_at = at("[applied]").ok_or("LWT answer without [applied]")?;
    let (owner_at, epoch_at) = (at("owner"), at("epoch"));
    let row: Row = rows
        .first_row::<Row>()
        .map_err(|e| format!("LWT answer: {e}"))?;
    let column = |i: Option<usize>| i.and_then(|i| row.columns.get(i).cloned().flatten());
    if let Some(CqlValue::Boolean(true)) = column(Some(applied_at)) {
        return Ok(LeaseOutcome::Applied);
    }
    let holder = match (column(owner_at), column(epoch_at)) {
        (Some(CqlValue::Uuid(owner)), Some(CqlValue::BigInt(epoch))) => {
            Some(Holder { owner, epoch })
        }
        (None, _) => None,
        (owner, epoch) => return Err(format!("lease row with owner {owner:?}, epoch {epoch:?}")),
    };
    Ok(LeaseOutcome::Refused(holder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_filled_in_and_split() {
        let statements = schema_statements("ks_test");
        assert_eq!(statements.len(), 4);
        for s in &statements {
            assert!(
                s.starts_with("CREATE TABLE IF NOT EXISTS ks_test.cluster_"),
                "{s}"
            );
            assert!(!s.contains("--") && !s.contains("{{"), "{s}");
        }
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::from_millis(2500)), 3);
        assert_eq!(ttl_secs(Duration::from_secs(10)), 10);
        assert_eq!(ttl_secs(Duration::ZERO), 1);
    }
}
