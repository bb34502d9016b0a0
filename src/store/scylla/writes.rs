//! Writes: a call's rows grouped by partition, each group sent as one
//! single-partition batch (counters in counter batches), groups concurrently.

use std::collections::HashMap;

use bytes::Bytes;
use scylla::{
    serialize::row::SerializeRow,
    statement::{
        batch::{Batch, BatchType},
        prepared::PreparedStatement,
    },
};

use super::{
    Inner,
    codec::{due_of, to_json},
    errors::backend,
    reads::concurrently,
    statements::Statements,
};
use crate::{
    domain::{Delivery, Link},
    store::{StoreError, StoreResult},
};

/// Write groups (one partition each) in flight at once for one call.
const WRITE_CONCURRENCY: usize = 32;
/// Statements per batch: a whole flush on one link (1024 clicks with long user
/// agents and referrers) would pass the server's 16 MiB frame and mutation limits.
const MAX_BATCH_STATEMENTS: usize = 128;

pub(super) type Values = Box<dyn SerializeRow + Send + Sync>;

/// Writes of one phase, grouped by partition when run.
#[derive(Default)]
pub(super) struct Writes<'a> {
    rows: Vec<Write<'a>>,
    /// Units numbered so far, and the one being filled by [`Writes::unit`].
    units: usize,
    open_unit: Option<usize>,
    /// Counter updates (or deletes on a counter table): they go in counter
    /// batches only, so a phase holds either these or plain writes.
    counters: bool,
}

pub(super) struct Write<'a> {
    /// Serialized partition key: equal keys are one partition (one mutation),
    /// even across tables.
    partition: Bytes,
    counter: bool,
    /// Writes of one unit always go in one batch (an outbox row and its index row).
    unit: usize,
    statement: &'a PreparedStatement,
    values: Values,
}

impl<'a> Writes<'a> {
    /// A phase of counter updates.
    pub(super) fn counters() -> Self {
        Self {
            counters: true,
            ..Self::default()
        }
    }

    /// A phase of one write.
    pub(super) fn one(
        statement: &'a PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
    ) -> StoreResult<Self> {
        let mut writes = Self::default();
        writes.add(statement, values)?;
        Ok(writes)
    }

    pub(super) fn add(
        &mut self,
        statement: &'a PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
    ) -> StoreResult<()> {
        let values: Values = Box::new(values);
        let partition = statement
            .compute_partition_key(&values)
            .map_err(|e| StoreError::permanent("partition key", e))?;
        let unit = match self.open_unit {
            Some(unit) => unit,
            None => {
                self.units += 1;
                self.units
            }
        };
        self.rows.push(Write {
            partition,
            counter: self.counters,
            unit,
            statement,
            values,
        });
        Ok(())
    }

    /// Writes added by `f` go to the server in one batch (all in one partition),
    /// never split: e.g. an outbox row never lands without its index row.
    pub(super) fn unit(&mut self, f: impl FnOnce(&mut Self) -> StoreResult<()>) -> StoreResult<()> {
        let outer = self.open_unit;
        if outer.is_none() {
            self.units += 1;
            self.open_unit = Some(self.units);
        }
        let result = f(self);
        self.open_unit = outer;
        result
    }

    /// Adds an outbox row and its index row (one partition: the endpoint).
    pub(super) fn delivery(&mut self, st: &'a Statements, d: &Delivery) -> StoreResult<()> {
        let due = due_of(d);
        let json = to_json(d)?;
        self.unit(|w| {
            w.add(&st.outbox_insert, (d.endpoint_id, due, d.event_id, json))?;
            w.add(&st.index_insert, (d.endpoint_id, d.event_id, due))
        })
    }

    /// Adds the link's expiry row, if it expires (`bucket` is its expiry bucket).
    pub(super) fn expiry(
        &mut self,
        st: &'a Statements,
        link: &Link,
        bucket: Option<i64>,
    ) -> StoreResult<()> {
        let (Some(at), Some(bucket)) = (link.expires_at, bucket) else {
            return Ok(());
        };
        let created_ms = link.created_at.timestamp_millis();
        self.add(
            &st.expiry_insert,
            (bucket, at, link.code.clone(), created_ms),
        )
    }

    pub(super) fn deliveries(
        &mut self,
        st: &'a Statements,
        deliveries: &[Delivery],
    ) -> StoreResult<()> {
        deliveries.iter().try_for_each(|d| self.delivery(st, d))
    }
}

impl Inner {
    /// Runs one phase: each partition's writes as one batch (or a lone statement),
    /// partitions concurrently. Fails if any group fails.
    pub(super) async fn run(&self, writes: Writes<'_>) -> StoreResult<()> {
        let mut groups: Vec<(bool, Vec<Write<'_>>)> = Vec::new();
        let mut at: HashMap<(Bytes, bool), usize> = HashMap::new();
        for write in writes.rows {
            let key = (write.partition.clone(), write.counter);
            match at.get(&key) {
                Some(&i) => groups[i].1.push(write),
                None => {
                    at.insert(key, groups.len());
                    groups.push((write.counter, vec![write]));
                }
            }
        }
        // Big groups go as several batches, cut between units.
        let mut chunks: Vec<(bool, Vec<Write<'_>>)> = Vec::new();
        for (counter, group) in groups {
            let mut chunk: Vec<Write<'_>> = Vec::new();
            for write in group {
                let unit_ends = chunk.last().is_some_and(|last| last.unit != write.unit);
                if chunk.len() >= MAX_BATCH_STATEMENTS && unit_ends {
                    chunks.push((counter, std::mem::take(&mut chunk)));
                }
                chunk.push(write);
            }
            chunks.push((counter, chunk));
        }
        let sends: Vec<_> = chunks
            .into_iter()
            .map(|(counter, chunk)| self.run_group(counter, chunk))
            .collect();
        concurrently(sends, WRITE_CONCURRENCY).await?;
        Ok(())
    }

    pub(super) async fn run_group(
        &self,
        counter: bool,
        mut group: Vec<Write<'_>>,
    ) -> StoreResult<()> {
        if group.len() == 1 {
            if let Some(write) = group.pop() {
                self.session
                    .execute_unpaged(write.statement, &write.values)
                    .await
                    .map_err(backend("write"))?;
            }
            return Ok(());
        }
        let mut batch = Batch::new(if counter {
            BatchType::Counter
        } else {
            BatchType::Unlogged
        });
        batch.set_is_idempotent(!counter);
        let mut values = Vec::with_capacity(group.len());
        for write in &group {
            batch.append_statement(write.statement.clone());
            values.push(&write.values);
        }
        self.session
            .batch(&batch, values)
            .await
            .map_err(backend("batch write"))?;
        Ok(())
    }
}
