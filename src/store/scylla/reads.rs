//! Reads: single statements, pages behind the API cursors, and the lookups
//! several calls share (link rows, counters, outbox positions, day indexes).

use std::{collections::HashMap, future::Future, pin::Pin};

use futures::{StreamExt, TryStreamExt, stream};
use scylla::{
    deserialize::{row::DeserializeRow, value::DeserializeValue},
    response::{PagingState, query_result::QueryResult},
    serialize::{row::SerializeRow, value::SerializeValue},
    statement::prepared::PreparedStatement,
    value::{Counter, Row},
};
use uuid::Uuid;

use super::{
    Inner,
    codec::{
        decode_day_cursor, decode_partition_cursor, encode_day_cursor, encode_partition_cursor,
        first_row, from_click_record, from_json, rows,
    },
    errors::{backend, is_bad_paging_state},
    writes::Values,
};
use crate::{
    domain::{Click, Link},
    store::{Page, Paging, StoreError, StoreResult},
};

/// Reads in flight at once when one call needs many (outbox index, links of a page).
pub(super) const READ_CONCURRENCY: usize = 32;

impl Inner {
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

    /// Reads one partition's single column from `from` until `out` holds
    /// `want` kept items or the partition ends. Returns where to go on: `Some`
    /// only when a row follows the last one kept (checked, so that a listing ends
    /// with `next_cursor: None` exactly when nothing follows, as in the embedded store).
    pub(super) async fn fill<C: Column, T: Send>(
        &self,
        statement: &PreparedStatement,
        values: &(dyn SerializeRow + Sync),
        mut from: PagingState,
        want: usize,
        out: &mut Vec<T>,
        keep: &Keep<'_, C, T>,
    ) -> StoreResult<Option<PagingState>> {
        loop {
            // Pages of exactly what is missing: when the page fills `out`, its last
            // row is the last kept one, so the paging state is the exact cursor.
            let need = want.saturating_sub(out.len()).max(1);
            let (rows, next) = self.page::<(C,)>(statement, values, from, need).await?;
            out.extend(keep(rows.into_iter().map(|(column,)| column).collect()).await?);
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
            // Untyped: any column will do for "is there a row".
            let (rows, next) = self.page::<Row>(statement, values, from, 1).await?;
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
    pub(super) async fn list_partition<C: Column, T: Send>(
        &self,
        statement: &PreparedStatement,
        values: &(dyn SerializeRow + Sync),
        page: &Paging,
        keep: &Keep<'_, C, T>,
    ) -> StoreResult<Page<T>> {
        let from = decode_partition_cursor(page.cursor.as_deref())?;
        let limit = page.limit.max(1);
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
    pub(super) async fn list_days<C: Column, T: Send>(
        &self,
        days_statement: &PreparedStatement,
        owner: impl SerializeValue + Send + Sync,
        page_statement: &PreparedStatement,
        day_values: impl Fn(i32) -> Values + Send + Sync,
        page: &Paging,
        keep: &Keep<'_, C, T>,
    ) -> StoreResult<Page<T>> {
        let (start_day, mut from) =
            decode_day_cursor(page.cursor.as_deref())?.unwrap_or((i32::MAX, PagingState::start()));
        let days: Vec<(i32,)> = rows(
            self.execute(days_statement, (owner, start_day), "reading day index")
                .await?,
        )?;
        // The cursor's day may be gone (deleted, expired): go on with older ones.
        if days.first().map(|(d,)| *d) != Some(start_day) {
            from = PagingState::start();
        }
        let limit = page.limit.max(1);
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
}

/// Runs `futures` with at most `limit` at once; the results in input order.
pub(super) async fn concurrently<T, F>(futures: Vec<F>, limit: usize) -> StoreResult<Vec<T>>
where
    F: Future<Output = StoreResult<T>>,
{
    stream::iter(futures).buffered(limit).try_collect().await
}

/// The one column a listing reads per row: text (JSON, codes) or a blob (clicks).
pub(super) trait Column: for<'f, 'm> DeserializeValue<'f, 'm> + Send {}
impl<C: for<'f, 'm> DeserializeValue<'f, 'm> + Send> Column for C {}

/// Turns one page of raw rows (their one column) into kept items.
pub(super) type Keep<'a, C, T> = dyn Fn(Vec<C>) -> Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'a>>
    + Send
    + Sync
    + 'a;

pub(super) fn parse_all<T: serde::de::DeserializeOwned + Send + 'static>(
    texts: Vec<String>,
) -> Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'static>> {
    Box::pin(async move { texts.iter().map(|t| from_json(t)).collect() })
}

pub(super) fn decode_clicks(
    records: Vec<Vec<u8>>,
) -> Pin<Box<dyn Future<Output = StoreResult<Vec<Click>>> + Send + 'static>> {
    Box::pin(async move { records.iter().map(|r| from_click_record(r)).collect() })
}
