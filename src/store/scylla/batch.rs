//! How calls reach the cluster: writes grouped into single-partition batches
//! run concurrently, and paged reads behind the API cursors.

use super::*;

pub(super) type Values = Box<dyn SerializeRow + Send + Sync>;

/// Writes of one phase, grouped by partition when run.
#[derive(Default)]
pub(super) struct Writes<'a> {
    rows: Vec<Write<'a>>,
    /// Units numbered so far, and the one being filled by [`Writes::unit`].
    units: usize,
    open_unit: Option<usize>,
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
    pub(super) fn add(
        &mut self,
        statement: &'a PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
    ) -> StoreResult<()> {
        self.push(statement, Box::new(values), false)
    }

    /// A counter update (or a delete on a counter table): counter batches only.
    pub(super) fn add_counter(
        &mut self,
        statement: &'a PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
    ) -> StoreResult<()> {
        self.push(statement, Box::new(values), true)
    }

    pub(super) fn push(
        &mut self,
        statement: &'a PreparedStatement,
        values: Values,
        counter: bool,
    ) -> StoreResult<()> {
        let partition = statement
            .compute_partition_key(&values)
            .map_err(|e| StoreError::Backend(format!("partition key: {e}")))?;
        let unit = match self.open_unit {
            Some(unit) => unit,
            None => {
                self.units += 1;
                self.units
            }
        };
        self.rows.push(Write {
            partition,
            counter,
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

    // ------------------------------------------------------------ reads

    pub(super) async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
        what: &'static str,
    ) -> StoreResult<QueryResult> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(backend(what))
    }

    /// One page of at most `size` rows from `from`, and where the next one starts.
    pub(super) async fn page<R>(
        &self,
        statement: &PreparedStatement,
        values: &(dyn SerializeRow + Sync),
        from: PagingState,
        size: usize,
    ) -> StoreResult<(Vec<R>, Option<PagingState>)>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let resumed = from.as_bytes_slice().is_some();
        let mut statement = statement.clone();
        statement.set_page_size(size.clamp(1, 5000) as i32);
        let (result, next) = self
            .session
            .execute_single_page(&statement, values, from)
            .await
            .map_err(|e| {
                if resumed && is_bad_paging_state(&e) {
                    StoreError::BadCursor
                } else {
                    backend("paged read")(e)
                }
            })?;
        let next = match next.into_paging_control_flow() {
            std::ops::ControlFlow::Break(()) => None,
            std::ops::ControlFlow::Continue(state) => Some(state),
        };
        Ok((rows(result)?, next))
    }

    /// Reads one partition's single text column from `from` until `out` holds
    /// `want` kept items or the partition ends. Returns where to go on: `Some`
    /// only when a row follows the last one kept (checked, so that a listing ends
    /// with `next_cursor: None` exactly when nothing follows, as in the embedded store).
    pub(super) async fn fill<T: Send>(
        &self,
        statement: &PreparedStatement,
        values: &(dyn SerializeRow + Sync),
        mut from: PagingState,
        want: usize,
        out: &mut Vec<T>,
        keep: &Keep<'_, T>,
    ) -> StoreResult<Option<PagingState>> {
        loop {
            // Pages of exactly what is missing: when the page fills `out`, its last
            // row is the last kept one, so the paging state is the exact cursor.
            let need = want.saturating_sub(out.len()).max(1);
            let (rows, next) = self
                .page::<(String,)>(statement, values, from, need)
                .await?;
            out.extend(keep(rows.into_iter().map(|(text,)| text).collect()).await?);
            match next {
                None => return Ok(None),
                Some(state) if out.len() >= want => {
                    return Ok(self
                        .has_rows(statement, values, state.clone())
                        .await?
                        .then_some(state));
                }
                Some(state) => from = state,
            }
        }
    }

    /// Whether any row follows `from` (pages may come back short, even empty).
    pub(super) async fn has_rows(
        &self,
        statement: &PreparedStatement,
        values: &(dyn SerializeRow + Sync),
        mut from: PagingState,
    ) -> StoreResult<bool> {
        loop {
            let (rows, next) = self.page::<(String,)>(statement, values, from, 1).await?;
            if !rows.is_empty() {
                return Ok(true);
            }
            match next {
                None => return Ok(false),
                Some(state) => from = state,
            }
        }
    }

    /// A listing of one partition, newest first (the clustering order).
    pub(super) async fn list_partition<T: Send>(
        &self,
        statement: &PreparedStatement,
        values: &(dyn SerializeRow + Sync),
        limit: usize,
        cursor: Option<&str>,
        keep: &Keep<'_, T>,
    ) -> StoreResult<Page<T>> {
        let from = decode_partition_cursor(cursor)?;
        let limit = limit.max(1);
        let mut items = Vec::with_capacity(limit.min(256));
        let next = self
            .fill(statement, values, from, limit, &mut items, keep)
            .await?;
        Ok(Page {
            items,
            next_cursor: next.as_ref().and_then(encode_partition_cursor),
        })
    }

    /// A listing of day-bucketed rows: the days (newest first) come from a day
    /// index, each day's partition is read newest first.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn list_days<T: Send>(
        &self,
        days_statement: &PreparedStatement,
        owner: impl SerializeValue + Send + Sync,
        page_statement: &PreparedStatement,
        day_values: impl Fn(i32) -> Values + Send + Sync,
        limit: usize,
        cursor: Option<&str>,
        keep: &Keep<'_, T>,
    ) -> StoreResult<Page<T>> {
        let (start_day, mut from) =
            decode_day_cursor(cursor)?.unwrap_or((i32::MAX, PagingState::start()));
        let days: Vec<(i32,)> = rows(
            self.execute(days_statement, (owner, start_day), "reading day index")
                .await?,
        )?;
        // The cursor's day may be gone (deleted, expired): go on with older ones.
        if days.first().map(|(d,)| *d) != Some(start_day) {
            from = PagingState::start();
        }
        let limit = limit.max(1);
        let mut items = Vec::with_capacity(limit.min(256));
        for (i, &(day,)) in days.iter().enumerate() {
            let values = day_values(day);
            let next = self
                .fill(
                    page_statement,
                    &values,
                    std::mem::replace(&mut from, PagingState::start()),
                    limit,
                    &mut items,
                    keep,
                )
                .await?;
            if items.len() >= limit {
                let next_cursor = match next {
                    Some(state) => Some(encode_day_cursor(day, Some(&state))),
                    None => days
                        .get(i + 1)
                        .map(|&(older,)| encode_day_cursor(older, None)),
                };
                return Ok(Page { items, next_cursor });
            }
        }
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    pub(super) async fn get_link_row(
        &self,
        code: &str,
    ) -> StoreResult<Option<(Link, Option<i64>)>> {
        let row: Option<(Option<String>, Option<i64>)> = first_row(
            self.execute(&self.st.link_get, (code,), "reading link")
                .await?,
        )?;
        match row {
            Some((Some(json), bucket)) => Ok(Some((from_json(&json)?, bucket))),
            _ => Ok(None),
        }
    }

    /// The code's click counter (0 when it has none).
    pub(super) async fn counter(&self, code: &str) -> StoreResult<i64> {
        let row: Option<(Option<Counter>,)> = first_row(
            self.execute(&self.st.count_get, (code,), "reading click count")
                .await?,
        )?;
        Ok(row.and_then(|(n,)| n).map_or(0, |Counter(n)| n))
    }

    /// The due of each (endpoint, event)'s current outbox row, if it has one.
    pub(super) async fn outbox_dues(
        &self,
        keys: Vec<(Uuid, Uuid)>,
    ) -> StoreResult<HashMap<(Uuid, Uuid), i64>> {
        let reads: Vec<_> = keys
            .into_iter()
            .map(|key| async move {
                let row: Option<(i64,)> = first_row(
                    self.execute(&self.st.index_get, key, "reading outbox index")
                        .await?,
                )?;
                Ok::<_, StoreError>(row.map(|(due,)| (key, due)))
            })
            .collect();
        let found = concurrently(reads, READ_CONCURRENCY).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Every day an owner (code, endpoint) has rows on, newest first.
    pub(super) async fn days(
        &self,
        statement: &PreparedStatement,
        owner: impl SerializeValue,
    ) -> StoreResult<Vec<i32>> {
        let days: Vec<(i32,)> = rows(
            self.execute(statement, (owner, i32::MAX), "reading day index")
                .await?,
        )?;
        Ok(days.into_iter().map(|(d,)| d).collect())
    }

    // ------------------------------------------------------------ expiries

    pub(super) async fn init_expiry_mark(&self) -> StoreResult<()> {
        // First open of the keyspace: nothing can be filed below the current hour.
        let start = (hour_of(Utc::now()) - 1).to_string();
        self.execute(
            &self.st.meta_insert,
            (EXPIRY_MARK_KEY, start),
            "initialising expiry mark",
        )
        .await?;
        Ok(())
    }

    pub(super) async fn expiry_mark(&self) -> StoreResult<i64> {
        let row: Option<(Option<String>,)> = first_row(
            self.execute(&self.st.meta_get, (EXPIRY_MARK_KEY,), "reading expiry mark")
                .await?,
        )?;
        match row {
            Some((Some(text),)) => text
                .parse()
                .map_err(|_| corrupt(format!("expiry mark {text:?}"))),
            _ => {
                self.init_expiry_mark().await?;
                Ok(hour_of(Utc::now()) - 1)
            }
        }
    }

    /// The due rows of one hour bucket, resolved to links, into `out` (up to
    /// `limit`). Stale rows (link gone, re-created or its expiry moved) are deleted
    /// up to their write time, so a concurrent rewrite of the same row survives.
    /// Returns whether the bucket still holds rows (live or unread).
    pub(super) async fn due_in_bucket(
        &self,
        bucket: i64,
        until: DateTime<Utc>,
        limit: usize,
        out: &mut Vec<Link>,
    ) -> StoreResult<bool> {
        let values = (bucket, until);
        let mut from = PagingState::start();
        let mut any_live = false;
        loop {
            let need = limit.saturating_sub(out.len()).max(1);
            let (rows, next) = self
                .page::<(DateTime<Utc>, String, Option<i64>, Option<i64>)>(
                    &self.st.expiries_due,
                    &values,
                    from,
                    need,
                )
                .await?;
            let reads: Vec<_> = rows
                .into_iter()
                .map(|(expires_at, code, created_ms, written)| async move {
                    let current = self.get_link_row(&code).await?;
                    Ok::<_, StoreError>((expires_at, code, created_ms, written, current))
                })
                .collect();
            let resolved = concurrently(reads, READ_CONCURRENCY).await?;
            let mut stale = Writes::default();
            for (expires_at, code, created_ms, written, current) in resolved {
                let live = match current {
                    Some((link, Some(b)))
                        if b == bucket
                            && Some(link.created_at.timestamp_millis()) == created_ms
                            && link.expires_at.map(|e| e.timestamp_millis())
                                == Some(expires_at.timestamp_millis()) =>
                    {
                        Some(link)
                    }
                    _ => None,
                };
                match (live, written) {
                    (Some(link), _) => {
                        any_live = true;
                        if out.len() < limit {
                            out.push(link);
                        }
                    }
                    (None, Some(written)) => stale.add(
                        &self.st.expiry_delete_upto,
                        (written, bucket, expires_at, code),
                    )?,
                    (None, None) => {}
                }
            }
            self.run(stale).await?;
            match next {
                Some(state) if out.len() < limit => from = state,
                // Rows left unread keep the bucket from being passed, like live ones.
                next => return Ok(any_live || next.is_some()),
            }
        }
    }
}

/// Runs `futures` with at most `limit` at once; the results in input order.
pub(super) async fn concurrently<T, F>(futures: Vec<F>, limit: usize) -> StoreResult<Vec<T>>
where
    F: Future<Output = StoreResult<T>>,
{
    stream::iter(futures).buffered(limit).try_collect().await
}

/// Turns one page of raw rows (the text column) into kept items.
pub(super) type Keep<'a, T> = dyn Fn(Vec<String>) -> Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'a>>
    + Send
    + Sync
    + 'a;

pub(super) fn parse_all<T: serde::de::DeserializeOwned + Send + 'static>(
    texts: Vec<String>,
) -> Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'static>> {
    Box::pin(async move { texts.iter().map(|t| from_json(t)).collect() })
}
