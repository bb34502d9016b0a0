//! Rollup counters (table `rollups`): added in a flush's counter phase, read a
//! day partition at a time, deleted with their link.

use std::collections::HashSet;

use scylla::value::Counter;

use super::{Inner, READ_CONCURRENCY, concurrently, errors::corrupt, rows, writes::Writes};
use crate::domain::Link;
use crate::store::{Dim, HourRollup, StatsScope, StoreResult};

fn day_of_hour(hour: i64) -> i32 {
    i32::try_from(hour.div_euclid(24)).unwrap_or(i32::MAX)
}

fn hour_col(hour: i64) -> i32 {
    i32::try_from(hour).unwrap_or(i32::MAX)
}

impl Inner {
    /// Adds each rollup's counts to `counters` (a counter phase).
    pub(super) fn add_rollups<'a>(
        &'a self,
        counters: &mut Writes<'a>,
        rollups: &[(StatsScope, HourRollup)],
    ) -> StoreResult<()> {
        for (scope, rollup) in rollups {
            let key = scope.key();
            for ((dim, value), n) in &rollup.counts {
                let n = i64::try_from(*n).map_err(corrupt)?;
                counters.add(
                    &self.st.rollup_add,
                    (
                        Counter(n),
                        key.clone(),
                        day_of_hour(rollup.hour),
                        hour_col(rollup.hour),
                        dim.as_str(),
                        value.clone(),
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// The scope's rollups in hours `[from, to)`, oldest first.
    pub(super) async fn read_rollups(
        &self,
        scope: &StatsScope,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<HourRollup>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let key = scope.key();
        let reads: Vec<_> = (day_of_hour(from)..=day_of_hour(to - 1))
            .map(|day| {
                let key = key.clone();
                async move {
                    let values = (key, day, hour_col(from), hour_col(to));
                    let rows: Vec<(i32, String, String, Counter)> = rows(
                        self.execute(&self.st.rollup_day, values, "reading rollups")
                            .await?,
                    )?;
                    Ok(rows)
                }
            })
            .collect();
        let mut out: Vec<HourRollup> = Vec::new();
        for (hour, dim, value, Counter(n)) in concurrently(reads, READ_CONCURRENCY)
            .await?
            .into_iter()
            .flatten()
        {
            let dim = Dim::parse(&dim).ok_or_else(|| corrupt(format!("rollup dim {dim:?}")))?;
            let hour = i64::from(hour);
            if out.last().is_none_or(|r| r.hour != hour) {
                out.push(HourRollup::new(hour));
            }
            if let Some(rollup) = out.last_mut() {
                rollup.add(dim, &value, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// Marks the days the batch's link rollups fall on (a plain phase, written
    /// with the clicks so the marks are durable before any counter).
    pub(super) fn mark_rollup_days<'a>(
        &'a self,
        writes: &mut Writes<'a>,
        rollups: &[(StatsScope, HourRollup)],
    ) -> StoreResult<()> {
        let mut marked = HashSet::new();
        for (scope, rollup) in rollups {
            let day = day_of_hour(rollup.hour);
            if matches!(scope, StatsScope::Link { .. }) && marked.insert((scope, day)) {
                writes.add(&self.st.rollup_day_insert, (scope.key(), day))?;
            }
        }
        Ok(())
    }

    /// Deletes the link's rollups (counter phase) and their day marks (plain phase).
    pub(super) async fn delete_rollups(&self, link: &Link) -> StoreResult<()> {
        let key = StatsScope::of_link(link).key();
        let days = self.days(&self.st.rollup_days_get, key.as_str()).await?;
        let mut counters = Writes::counters();
        for day in days {
            counters.add(&self.st.rollup_delete_day, (key.clone(), day))?;
        }
        self.run(counters).await?;
        self.run(Writes::one(&self.st.rollup_days_delete, (key,))?)
            .await
    }
}
