//! The scylla store: ScyllaDB (or Apache Cassandra 4/5) through the `scylla` driver.
//!
//! Owns the CQL layout (`schema.cql`, applied idempotently at start-up), the
//! prepared statements (prepared once, at open) and the mapping of every [`Store`]
//! call onto them, with the same semantics as the embedded store.
//!
//! How writes go: every call groups its writes by partition key and sends each
//! group as a single-partition unlogged batch (counters in their own counter
//! batch; a big group as several, never splitting an outbox row from its index
//! row), groups running concurrently. Where order matters (a link row before
//! the expiry row that points at it, counters last) calls run phases one after
//! the other. Codes and meta values are claimed with lightweight transactions;
//! link rows are only ever written through them (no LWT/plain timestamp mixing).
//!
//! How listings page: the driver's paging state, wrapped in base64url, is the
//! API cursor. Day-bucketed logs (clicks, attempts) also carry the day bucket in
//! the cursor and walk the days listed in a small per-link/per-endpoint day index.
//!
//! Expiries: rows sit in hour buckets; a low-water mark in `meta` says below which
//! hour every bucket is known to be empty, so `due_expiries` scans from the mark
//! (however long the server was down) and never from the beginning of time.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use scylla::{
    client::{session::Session, session_builder::SessionBuilder},
    deserialize::row::DeserializeRow,
    errors::{DbError, ExecutionError, RequestAttemptError},
    response::{PagingState, query_result::QueryResult},
    serialize::{row::SerializeRow, value::SerializeValue},
    statement::{
        batch::{Batch, BatchType},
        prepared::PreparedStatement,
    },
    value::{Counter, CqlValue, Row},
};
use uuid::Uuid;

use super::{ClickBatch, Page, Store, StoreError, StoreResult};
use crate::domain::{
    Account, AccountId, Attempt, AttemptStatus, Click, Delivery, DeliveryStatus, DeliveryUpdate,
    Endpoint, Incident, Link,
};

/// The CQL schema; `{{keyspace}}` and `{{replication_factor}}` are filled in at open.
const SCHEMA: &str = include_str!("schema.cql");

/// `meta` key of the expiry low-water mark (an hour bucket number, as text).
const EXPIRY_MARK_KEY: &str = "relurl.expiry_low_water_hour";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// The mark only passes an hour bucket this long after the hour ended: an expiry
/// row written "now" (see [`expiry_bucket`]) has landed by then, even with some
/// clock skew between nodes.
const EXPIRY_GRACE_MS: i64 = 10 * 60_000;
/// Outbox rows of failed deliveries sort after every pending one.
const FAILED_DUE: i64 = i64::MAX;
/// Write groups (one partition each) in flight at once for one call.
const WRITE_CONCURRENCY: usize = 32;
/// Statements per batch: a whole flush on one link (1024 clicks with long user
/// agents and referrers) would pass the server's 16 MiB frame and mutation limits.
const MAX_BATCH_STATEMENTS: usize = 128;
/// Reads in flight at once when one call needs many (outbox index, links of a page).
const READ_CONCURRENCY: usize = 32;
/// Cursor tags: a paging state of one partition, or a day bucket plus one.
const CURSOR_PARTITION: u8 = b'p';
const CURSOR_DAY: u8 = b'd';

/// Where and how to connect; built from `[store]` by [`ScyllaOptions::from_config`].
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Created when missing.
    pub keyspace: String,
    pub replication_factor: u32,
    /// Clicks expire this long after they are written.
    pub click_ttl: Duration,
    /// Delivery attempts expire this long after they are written.
    pub attempt_ttl: Duration,
}

impl ScyllaOptions {
    pub fn from_config(store: &crate::config::StoreConfig) -> Self {
        Self {
            nodes: store.scylla_nodes.clone(),
            keyspace: store.scylla_keyspace.clone(),
            replication_factor: store.scylla_replication_factor,
            click_ttl: store.click_ttl,
            attempt_ttl: store.attempt_ttl,
        }
    }
}

#[derive(Clone)]
pub struct ScyllaStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    st: Statements,
    /// TTLs in seconds, as CQL binds them; the day markers outlive their day's rows.
    click_ttl: i32,
    click_day_ttl: i32,
    attempt_ttl: i32,
    attempt_day_ttl: i32,
}

/// Every data-access statement, prepared once at open.
struct Statements {
    ping: PreparedStatement,
    meta_insert: PreparedStatement,
    meta_get: PreparedStatement,
    meta_cas: PreparedStatement,
    account_insert: PreparedStatement,
    api_key_insert: PreparedStatement,
    api_key_get: PreparedStatement,
    link_claim: PreparedStatement,
    link_get: PreparedStatement,
    link_count_base: PreparedStatement,
    link_set: PreparedStatement,
    link_set_json: PreparedStatement,
    link_delete: PreparedStatement,
    account_link_insert: PreparedStatement,
    account_link_delete: PreparedStatement,
    account_links_page: PreparedStatement,
    count_add: PreparedStatement,
    count_get: PreparedStatement,
    click_insert: PreparedStatement,
    clicks_page: PreparedStatement,
    clicks_delete_day: PreparedStatement,
    click_day_insert: PreparedStatement,
    click_days_get: PreparedStatement,
    click_days_delete: PreparedStatement,
    incident_insert: PreparedStatement,
    incidents_page: PreparedStatement,
    expiry_insert: PreparedStatement,
    expiry_delete: PreparedStatement,
    expiry_delete_upto: PreparedStatement,
    expiries_due: PreparedStatement,
    endpoint_insert: PreparedStatement,
    endpoint_get: PreparedStatement,
    endpoint_delete: PreparedStatement,
    endpoints_all: PreparedStatement,
    account_endpoint_insert: PreparedStatement,
    account_endpoint_delete: PreparedStatement,
    account_endpoints_get: PreparedStatement,
    outbox_insert: PreparedStatement,
    outbox_delete: PreparedStatement,
    outbox_due: PreparedStatement,
    outbox_get: PreparedStatement,
    outbox_clear: PreparedStatement,
    index_insert: PreparedStatement,
    index_get: PreparedStatement,
    index_delete: PreparedStatement,
    index_clear: PreparedStatement,
    attempt_insert: PreparedStatement,
    attempts_page: PreparedStatement,
    attempts_delete_day: PreparedStatement,
    attempt_day_insert: PreparedStatement,
    attempt_days_get: PreparedStatement,
    attempt_days_delete: PreparedStatement,
}

impl Statements {
    async fn prepare(session: &Session, keyspace: &str) -> StoreResult<Self> {
        let p = async |cql: &str| -> StoreResult<PreparedStatement> {
            let cql = cql.replace("{ks}", keyspace);
            let mut prepared = session
                .prepare(cql.as_str())
                .await
                .map_err(|e| StoreError::Backend(format!("preparing `{cql}`: {e}")))?;
            // Plain writes and reads may be retried; LWTs and counters may not.
            let lwt_or_counter = cql.contains(" IF ") || cql.contains("n = n +");
            prepared.set_is_idempotent(!lwt_or_counter);
            Ok(prepared)
        };
        Ok(Self {
            ping: p("SELECT now() FROM system.local").await?,
            meta_insert: p("INSERT INTO {ks}.meta (key, value) VALUES (?, ?) IF NOT EXISTS").await?,
            meta_get: p("SELECT value FROM {ks}.meta WHERE key = ?").await?,
            meta_cas: p("UPDATE {ks}.meta SET value = ? WHERE key = ? IF value = ?").await?,
            account_insert: p("INSERT INTO {ks}.accounts (id, json) VALUES (?, ?)").await?,
            api_key_insert: p("INSERT INTO {ks}.api_keys (key_hash, account_id) VALUES (?, ?)")
                .await?,
            api_key_get: p("SELECT account_id FROM {ks}.api_keys WHERE key_hash = ?").await?,
            link_claim: p(
                "INSERT INTO {ks}.links (code, json, expiry_bucket, count_base) \
                 VALUES (?, ?, ?, ?) IF NOT EXISTS",
            )
            .await?,
            link_get: p("SELECT json, expiry_bucket FROM {ks}.links WHERE code = ?").await?,
            link_count_base: p("SELECT count_base FROM {ks}.links WHERE code = ?").await?,
            link_set: p(
                "UPDATE {ks}.links SET json = ?, expiry_bucket = ? WHERE code = ? IF EXISTS",
            )
            .await?,
            link_set_json: p("UPDATE {ks}.links SET json = ? WHERE code = ? IF EXISTS").await?,
            link_delete: p("DELETE FROM {ks}.links WHERE code = ? IF EXISTS").await?,
            account_link_insert: p(
                "INSERT INTO {ks}.account_links (account_id, created_at, code) VALUES (?, ?, ?)",
            )
            .await?,
            account_link_delete: p(
                "DELETE FROM {ks}.account_links WHERE account_id = ? AND created_at = ? AND code = ?",
            )
            .await?,
            account_links_page: p("SELECT code FROM {ks}.account_links WHERE account_id = ?")
                .await?,
            count_add: p("UPDATE {ks}.click_counts SET n = n + ? WHERE code = ?").await?,
            count_get: p("SELECT n FROM {ks}.click_counts WHERE code = ?").await?,
            click_insert: p(
                "INSERT INTO {ks}.clicks (code, day, id, json) VALUES (?, ?, ?, ?) USING TTL ?",
            )
            .await?,
            clicks_page: p("SELECT json FROM {ks}.clicks WHERE code = ? AND day = ?").await?,
            clicks_delete_day: p("DELETE FROM {ks}.clicks WHERE code = ? AND day = ?").await?,
            click_day_insert: p(
                "INSERT INTO {ks}.click_days (code, day) VALUES (?, ?) USING TTL ?",
            )
            .await?,
            click_days_get: p("SELECT day FROM {ks}.click_days WHERE code = ? AND day <= ?")
                .await?,
            click_days_delete: p("DELETE FROM {ks}.click_days WHERE code = ?").await?,
            incident_insert: p(
                "INSERT INTO {ks}.incidents (account_id, id, json) VALUES (?, ?, ?)",
            )
            .await?,
            incidents_page: p("SELECT json FROM {ks}.incidents WHERE account_id = ?").await?,
            expiry_insert: p(
                "INSERT INTO {ks}.expiries (bucket, expires_at, code, created_ms) VALUES (?, ?, ?, ?)",
            )
            .await?,
            expiry_delete: p(
                "DELETE FROM {ks}.expiries WHERE bucket = ? AND expires_at = ? AND code = ?",
            )
            .await?,
            expiry_delete_upto: p(
                "DELETE FROM {ks}.expiries USING TIMESTAMP ? \
                 WHERE bucket = ? AND expires_at = ? AND code = ?",
            )
            .await?,
            expiries_due: p(
                "SELECT expires_at, code, created_ms, WRITETIME(created_ms) FROM {ks}.expiries \
                 WHERE bucket = ? AND expires_at <= ?",
            )
            .await?,
            endpoint_insert: p("INSERT INTO {ks}.endpoints (id, account_id, json) VALUES (?, ?, ?)")
                .await?,
            endpoint_get: p("SELECT json FROM {ks}.endpoints WHERE id = ?").await?,
            endpoint_delete: p("DELETE FROM {ks}.endpoints WHERE id = ?").await?,
            endpoints_all: p("SELECT json FROM {ks}.endpoints").await?,
            account_endpoint_insert: p(
                "INSERT INTO {ks}.account_endpoints (account_id, endpoint_id) VALUES (?, ?)",
            )
            .await?,
            account_endpoint_delete: p(
                "DELETE FROM {ks}.account_endpoints WHERE account_id = ? AND endpoint_id = ?",
            )
            .await?,
            account_endpoints_get: p(
                "SELECT endpoint_id FROM {ks}.account_endpoints WHERE account_id = ?",
            )
            .await?,
            outbox_insert: p(
                "INSERT INTO {ks}.outbox (endpoint_id, due, event_id, json) VALUES (?, ?, ?, ?)",
            )
            .await?,
            outbox_delete: p(
                "DELETE FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id = ?",
            )
            .await?,
            outbox_due: p(
                "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due < ? LIMIT ?",
            )
            .await?,
            outbox_get: p(
                "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id = ?",
            )
            .await?,
            outbox_clear: p("DELETE FROM {ks}.outbox WHERE endpoint_id = ?").await?,
            index_insert: p(
                "INSERT INTO {ks}.outbox_index (endpoint_id, event_id, due) VALUES (?, ?, ?)",
            )
            .await?,
            index_get: p(
                "SELECT due FROM {ks}.outbox_index WHERE endpoint_id = ? AND event_id = ?",
            )
            .await?,
            index_delete: p(
                "DELETE FROM {ks}.outbox_index WHERE endpoint_id = ? AND event_id = ?",
            )
            .await?,
            index_clear: p("DELETE FROM {ks}.outbox_index WHERE endpoint_id = ?").await?,
            attempt_insert: p(
                "INSERT INTO {ks}.attempts (endpoint_id, day, id, json) VALUES (?, ?, ?, ?) \
                 USING TTL ?",
            )
            .await?,
            attempts_page: p("SELECT json FROM {ks}.attempts WHERE endpoint_id = ? AND day = ?")
                .await?,
            attempts_delete_day: p(
                "DELETE FROM {ks}.attempts WHERE endpoint_id = ? AND day = ?",
            )
            .await?,
            attempt_day_insert: p(
                "INSERT INTO {ks}.attempt_days (endpoint_id, day) VALUES (?, ?) USING TTL ?",
            )
            .await?,
            attempt_days_get: p(
                "SELECT day FROM {ks}.attempt_days WHERE endpoint_id = ? AND day <= ?",
            )
            .await?,
            attempt_days_delete: p("DELETE FROM {ks}.attempt_days WHERE endpoint_id = ?").await?,
        })
    }
}

/// The schema's statements with the keyspace and replication factor filled in.
fn schema_statements(keyspace: &str, replication_factor: u32) -> Vec<String> {
    let without_comments: Vec<&str> = SCHEMA
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect();
    without_comments
        .join("\n")
        .replace("{{keyspace}}", keyspace)
        .replace("{{replication_factor}}", &replication_factor.to_string())
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn ttl_secs(ttl: Duration, extra: Duration) -> i32 {
    // Config validation keeps TTLs within ten years: far inside i32 seconds.
    i32::try_from((ttl + extra).as_secs()).unwrap_or(i32::MAX)
}

impl ScyllaStore {
    /// Connects, applies the schema (waiting for schema agreement) and prepares
    /// every statement.
    pub async fn open(options: &ScyllaOptions) -> StoreResult<Self> {
        let session = SessionBuilder::new()
            .known_nodes(&options.nodes)
            .connection_timeout(Duration::from_secs(5))
            // Only our keyspace's metadata is needed (token-aware routing).
            .keyspaces_to_fetch([options.keyspace.clone()])
            .build()
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to CQL nodes {}: {e}",
                    options.nodes.join(", ")
                ))
            })?;
        for statement in schema_statements(&options.keyspace, options.replication_factor) {
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .map_err(|e| StoreError::Backend(format!("applying schema `{statement}`: {e}")))?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(|e| StoreError::Backend(format!("waiting for schema agreement: {e}")))?;
        let st = Statements::prepare(&session, &options.keyspace).await?;
        let day = Duration::from_secs(86_400);
        let store = Self {
            inner: Arc::new(Inner {
                session,
                st,
                click_ttl: ttl_secs(options.click_ttl, Duration::ZERO),
                click_day_ttl: ttl_secs(options.click_ttl, day),
                attempt_ttl: ttl_secs(options.attempt_ttl, Duration::ZERO),
                attempt_day_ttl: ttl_secs(options.attempt_ttl, day),
            }),
        };
        store.inner.init_expiry_mark().await?;
        Ok(store)
    }
}

// ---------------------------------------------------------------- errors and rows

fn backend(what: &'static str) -> impl Fn(ExecutionError) -> StoreError {
    move |e| StoreError::Backend(format!("{what}: {e}"))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The server's refusal of a paging state we were handed is the caller's bad cursor.
fn is_bad_paging_state(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::ProtocolError | DbError::Invalid,
            _
        ))
    )
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(corrupt)
}

/// Every row of a result, typed.
fn rows<R>(result: QueryResult) -> StoreResult<Vec<R>>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    let rows = result.into_rows_result().map_err(corrupt)?;
    let typed = rows.rows::<R>().map_err(corrupt)?;
    typed.collect::<Result<Vec<R>, _>>().map_err(corrupt)
}

fn first_row<R>(result: QueryResult) -> StoreResult<Option<R>>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    Ok(rows(result)?.into_iter().next())
}

/// A lightweight transaction's outcome: applied, and the row's `value` column
/// when it was not (the value that stays).
fn lwt_outcome(result: QueryResult) -> StoreResult<(bool, Option<String>)> {
    let rows = result.into_rows_result().map_err(corrupt)?;
    let specs = rows.column_specs();
    let applied_at = specs
        .get_by_name("[applied]")
        .map(|(i, _)| i)
        .ok_or_else(|| corrupt("LWT answer without [applied]"))?;
    let value_at = specs.get_by_name("value").map(|(i, _)| i);
    let row: Row = rows
        .first_row::<Row>()
        .map_err(|e| corrupt(format!("LWT answer: {e}")))?;
    let applied = matches!(
        row.columns.get(applied_at),
        Some(Some(CqlValue::Boolean(true)))
    );
    let value = value_at
        .and_then(|i| row.columns.get(i).cloned().flatten())
        .and_then(|v| match v {
            CqlValue::Text(s) | CqlValue::Ascii(s) => Some(s),
            _ => None,
        });
    Ok((applied, value))
}

// ---------------------------------------------------------------- keys

fn day_of_millis(ms: i64) -> i32 {
    // Days since the epoch fit i32 for any date chrono represents here.
    i32::try_from(ms.div_euclid(DAY_MS)).unwrap_or(i32::MAX)
}

/// The UTC day a log row (click, attempt) is filed under: its UUIDv7's time, so
/// that walking days newest first and ids newest first inside a day is one order.
fn day_of(id: Uuid, at: DateTime<Utc>) -> i32 {
    let ms = id
        .get_timestamp()
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            secs as i64 * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or_else(|| at.timestamp_millis());
    day_of_millis(ms)
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(HOUR_MS)
}

/// The hour bucket an expiry row is written to: its own hour, or the current one
/// when that has passed. The low-water mark never passes the current hour, so a
/// row is never filed below it, even for a link that expired long ago.
fn expiry_bucket(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    hour_of(expires_at).max(hour_of(now))
}

fn due_of(delivery: &Delivery) -> i64 {
    match delivery.status {
        DeliveryStatus::Pending => delivery.next_attempt_at.timestamp_millis().max(0),
        DeliveryStatus::Failed => FAILED_DUE,
    }
}

fn encode_partition_cursor(state: &PagingState) -> Option<String> {
    let bytes = state.as_bytes_slice()?;
    let mut raw = Vec::with_capacity(1 + bytes.len());
    raw.push(CURSOR_PARTITION);
    raw.extend_from_slice(bytes);
    Some(URL_SAFE_NO_PAD.encode(raw))
}

fn decode_partition_cursor(cursor: Option<&str>) -> StoreResult<PagingState> {
    let Some(cursor) = cursor else {
        return Ok(PagingState::start());
    };
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    match raw.split_first() {
        Some((&CURSOR_PARTITION, state)) if !state.is_empty() => {
            Ok(PagingState::new_from_raw_bytes(state))
        }
        _ => Err(StoreError::BadCursor),
    }
}

/// A day bucket and where in it to go on (`None`: from its start).
fn encode_day_cursor(day: i32, state: Option<&PagingState>) -> String {
    let mut raw = vec![CURSOR_DAY];
    raw.extend_from_slice(&day.to_be_bytes());
    if let Some(bytes) = state.and_then(PagingState::as_bytes_slice) {
        raw.extend_from_slice(bytes);
    }
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_day_cursor(cursor: Option<&str>) -> StoreResult<Option<(i32, PagingState)>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    match raw.split_first() {
        Some((&CURSOR_DAY, rest)) if rest.len() >= 4 => {
            let (day, state) = rest.split_at(4);
            let day = i32::from_be_bytes(day.try_into().map_err(|_| StoreError::BadCursor)?);
            let state = if state.is_empty() {
                PagingState::start()
            } else {
                PagingState::new_from_raw_bytes(state)
            };
            Ok(Some((day, state)))
        }
        _ => Err(StoreError::BadCursor),
    }
}

// ---------------------------------------------------------------- writes

type Values = Box<dyn SerializeRow + Send + Sync>;

/// Writes of one phase, grouped by partition when run.
#[derive(Default)]
struct Writes<'a> {
    rows: Vec<Write<'a>>,
    /// Units numbered so far, and the one being filled by [`Writes::unit`].
    units: usize,
    open_unit: Option<usize>,
}

struct Write<'a> {
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
    fn add(
        &mut self,
        statement: &'a PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
    ) -> StoreResult<()> {
        self.push(statement, Box::new(values), false)
    }

    /// A counter update (or a delete on a counter table): counter batches only.
    fn add_counter(
        &mut self,
        statement: &'a PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
    ) -> StoreResult<()> {
        self.push(statement, Box::new(values), true)
    }

    fn push(
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
    fn unit(&mut self, f: impl FnOnce(&mut Self) -> StoreResult<()>) -> StoreResult<()> {
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
    fn delivery(&mut self, st: &'a Statements, d: &Delivery) -> StoreResult<()> {
        let due = due_of(d);
        let json = to_json(d)?;
        self.unit(|w| {
            w.add(&st.outbox_insert, (d.endpoint_id, due, d.event_id, json))?;
            w.add(&st.index_insert, (d.endpoint_id, d.event_id, due))
        })
    }

    fn deliveries(&mut self, st: &'a Statements, deliveries: &[Delivery]) -> StoreResult<()> {
        deliveries.iter().try_for_each(|d| self.delivery(st, d))
    }
}

impl Inner {
    /// Runs one phase: each partition's writes as one batch (or a lone statement),
    /// partitions concurrently. Fails if any group fails.
    async fn run(&self, writes: Writes<'_>) -> StoreResult<()> {
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

    async fn run_group(&self, counter: bool, mut group: Vec<Write<'_>>) -> StoreResult<()> {
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

    async fn execute(
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
    async fn page<R>(
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
    async fn fill<T: Send>(
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
    async fn has_rows(
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
    async fn list_partition<T: Send>(
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
    async fn list_days<T: Send>(
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

    async fn get_link_row(&self, code: &str) -> StoreResult<Option<(Link, Option<i64>)>> {
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
    async fn counter(&self, code: &str) -> StoreResult<i64> {
        let row: Option<(Option<Counter>,)> = first_row(
            self.execute(&self.st.count_get, (code,), "reading click count")
                .await?,
        )?;
        Ok(row.and_then(|(n,)| n).map_or(0, |Counter(n)| n))
    }

    /// The due of each (endpoint, event)'s current outbox row, if it has one.
    async fn outbox_dues(
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
    async fn days(
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

    async fn init_expiry_mark(&self) -> StoreResult<()> {
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

    async fn expiry_mark(&self) -> StoreResult<i64> {
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
    async fn due_in_bucket(
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
async fn concurrently<T, F>(futures: Vec<F>, limit: usize) -> StoreResult<Vec<T>>
where
    F: Future<Output = StoreResult<T>>,
{
    stream::iter(futures).buffered(limit).try_collect().await
}

/// Turns one page of raw rows (the text column) into kept items.
type Keep<'a, T> = dyn Fn(Vec<String>) -> Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'a>>
    + Send
    + Sync
    + 'a;

fn parse_all<T: serde::de::DeserializeOwned + Send + 'static>(
    texts: Vec<String>,
) -> Pin<Box<dyn Future<Output = StoreResult<Vec<T>>> + Send + 'static>> {
    Box::pin(async move { texts.iter().map(|t| from_json(t)).collect() })
}

#[async_trait]
impl Store for ScyllaStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner
            .session
            .execute_unpaged(&self.inner.st.ping, ())
            .await
            .map_err(|e| StoreError::Backend(format!("CQL backend not answering: {e}")))?;
        Ok(())
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        let s = &self.inner;
        let result = s
            .execute(&s.st.meta_insert, (key, value), "claiming meta value")
            .await?;
        match lwt_outcome(result)? {
            (true, _) => Ok(value.to_string()),
            (false, Some(existing)) => Ok(existing),
            (false, None) => Err(corrupt(format!("meta {key} exists without a value"))),
        }
    }

    async fn create_account(&self, account: &Account, api_key_hash: [u8; 32]) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        writes.add(&s.st.account_insert, (account.id, to_json(account)?))?;
        writes.add(&s.st.api_key_insert, (api_key_hash.to_vec(), account.id))?;
        s.run(writes).await
    }

    async fn account_by_key_hash(&self, api_key_hash: [u8; 32]) -> StoreResult<Option<AccountId>> {
        let s = &self.inner;
        let row: Option<(Option<Uuid>,)> = first_row(
            s.execute(
                &s.st.api_key_get,
                (api_key_hash.to_vec(),),
                "reading api key",
            )
            .await?,
        )?;
        Ok(row.and_then(|(id,)| id))
    }

    async fn insert_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<bool> {
        let s = &self.inner;
        let bucket = link.expires_at.map(|at| expiry_bucket(at, Utc::now()));
        // Clicks a deleted link with this code left on the counter do not count.
        let base = s.counter(&link.code).await?;
        // The claim: of two nodes inserting one code, exactly one is applied.
        let claimed = s
            .execute(
                &s.st.link_claim,
                (link.code.as_str(), to_json(link)?, bucket, base),
                "claiming link code",
            )
            .await?;
        if !lwt_outcome(claimed)?.0 {
            return Ok(false);
        }
        let rest = async {
            let mut writes = Writes::default();
            writes.add(
                &s.st.account_link_insert,
                (link.account_id, link.created_at, link.code.clone()),
            )?;
            if let (Some(at), Some(bucket)) = (link.expires_at, bucket) {
                writes.add(
                    &s.st.expiry_insert,
                    (
                        bucket,
                        at,
                        link.code.clone(),
                        link.created_at.timestamp_millis(),
                    ),
                )?;
            }
            writes.deliveries(&s.st, deliveries)?;
            s.run(writes).await
        };
        if let Err(e) = rest.await {
            // Give the code back rather than leave a link that is in no listing;
            // rows already written point at nothing and are skipped or cleaned.
            let _ = s
                .execute(&s.st.link_delete, (link.code.as_str(),), "undoing link")
                .await;
            return Err(e);
        }
        Ok(true)
    }

    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>> {
        Ok(self.inner.get_link_row(code).await?.map(|(link, _)| link))
    }

    async fn update_link(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let json = to_json(link)?;
        let old = s.get_link_row(&link.code).await?;
        let mut writes = Writes::default();
        // Link rows are only ever written through Paxos (claimed with LWT), so
        // updates are conditional too: no mixing of LWT and plain write timestamps,
        // and a link deleted meanwhile is not brought back.
        match old {
            // A new expiry is owed its event; an unchanged one keeps its state.
            Some((old, old_bucket)) if old.expires_at != link.expires_at => {
                let bucket = link.expires_at.map(|at| expiry_bucket(at, Utc::now()));
                // The link row first: an expiry row is only ever visible after the
                // link row it matches (due_expiries treats mismatches as stale).
                let written = s
                    .execute(
                        &s.st.link_set,
                        (json, bucket, link.code.as_str()),
                        "writing link",
                    )
                    .await?;
                if lwt_outcome(written)?.0 {
                    if let (Some(at), Some(bucket)) = (link.expires_at, bucket) {
                        writes.add(
                            &s.st.expiry_insert,
                            (
                                bucket,
                                at,
                                link.code.clone(),
                                link.created_at.timestamp_millis(),
                            ),
                        )?;
                    }
                    if let (Some(at), Some(bucket)) = (old.expires_at, old_bucket) {
                        writes.add(&s.st.expiry_delete, (bucket, at, link.code.clone()))?;
                    }
                }
            }
            _ => {
                s.execute(
                    &s.st.link_set_json,
                    (json, link.code.as_str()),
                    "writing link",
                )
                .await?;
            }
        }
        writes.deliveries(&s.st, deliveries)?;
        s.run(writes).await
    }

    async fn due_expiries(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Link>> {
        let s = &self.inner;
        let mut links = Vec::new();
        if limit == 0 {
            return Ok(links);
        }
        let mark = s.expiry_mark().await?;
        // Buckets that ended this long ago are complete: nothing new lands there.
        let settled = until.min(Utc::now()).timestamp_millis() - EXPIRY_GRACE_MS;
        let mut new_mark = mark;
        let mut passable = true;
        for bucket in mark..=hour_of(until) {
            let any = s.due_in_bucket(bucket, until, limit, &mut links).await?;
            if passable && !any && (bucket + 1) * HOUR_MS <= settled {
                new_mark = bucket + 1;
            } else {
                passable = false;
            }
            if links.len() >= limit {
                break;
            }
        }
        if new_mark > mark {
            // Compare-and-set: a node that read an older mark cannot move it back.
            s.execute(
                &s.st.meta_cas,
                (new_mark.to_string(), EXPIRY_MARK_KEY, mark.to_string()),
                "advancing expiry mark",
            )
            .await?;
        }
        // Rows written late into the current hour can be older than earlier buckets'.
        links.sort_by_key(|l| l.expires_at);
        links.truncate(limit);
        Ok(links)
    }

    async fn mark_expired(&self, link: &Link, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        if let Some(at) = link.expires_at
            && let Some((_, Some(bucket))) = s.get_link_row(&link.code).await?
        {
            writes.add(&s.st.expiry_delete, (bucket, at, link.code.clone()))?;
        }
        writes.deliveries(&s.st, deliveries)?;
        s.run(writes).await
    }

    async fn delete_link(&self, link: &Link) -> StoreResult<()> {
        let s = &self.inner;
        let bucket = s.get_link_row(&link.code).await?.and_then(|(_, b)| b);
        let days = s.days(&s.st.click_days_get, link.code.as_str()).await?;
        // Through Paxos, like every write of a link row (see update_link).
        s.execute(&s.st.link_delete, (link.code.as_str(),), "deleting link")
            .await?;
        let mut writes = Writes::default();
        let code = || link.code.clone();
        // The click counter stays (see `links.count_base` in schema.cql): without
        // its link it counts for nothing, and a new link on the code starts above it.
        writes.add(
            &s.st.account_link_delete,
            (link.account_id, link.created_at, code()),
        )?;
        if let (Some(at), Some(bucket)) = (link.expires_at, bucket) {
            writes.add(&s.st.expiry_delete, (bucket, at, code()))?;
        }
        for day in days {
            writes.add(&s.st.clicks_delete_day, (code(), day))?;
        }
        writes.add(&s.st.click_days_delete, (code(),))?;
        s.run(writes).await
    }

    async fn list_links(
        &self,
        account: AccountId,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Link>> {
        let s = &self.inner;
        let keep: &Keep<'_, Link> = &|codes: Vec<String>| {
            Box::pin(async move {
                let reads: Vec<_> = codes
                    .into_iter()
                    .map(|code| async move { s.get_link_row(&code).await })
                    .collect();
                let links = concurrently(reads, READ_CONCURRENCY).await?;
                // A listing row whose link is gone is skipped, not an error.
                Ok(links
                    .into_iter()
                    .flatten()
                    .map(|(link, _)| link)
                    .filter(|link| link.account_id == account)
                    .collect())
            })
        };
        s.list_partition(&s.st.account_links_page, &(account,), limit, cursor, keep)
            .await
    }

    async fn record_clicks(&self, batch: &ClickBatch) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        let mut marked = std::collections::HashSet::new();
        for click in &batch.clicks {
            let day = day_of(click.id, click.at);
            writes.add(
                &s.st.click_insert,
                (
                    click.code.clone(),
                    day,
                    click.id,
                    to_json(click)?,
                    s.click_ttl,
                ),
            )?;
            if marked.insert((click.code.as_str(), day)) {
                writes.add(
                    &s.st.click_day_insert,
                    (click.code.clone(), day, s.click_day_ttl),
                )?;
            }
        }
        writes.deliveries(&s.st, &batch.deliveries)?;
        s.run(writes).await?;
        // Counters last, once everything else is durable: they are the one write
        // a retried batch cannot repeat harmlessly.
        let mut counters = Writes::default();
        for (code, add) in &batch.counts {
            let add = i64::try_from(*add).map_err(corrupt)?;
            counters.add_counter(&s.st.count_add, (Counter(add), code.clone()))?;
        }
        s.run(counters).await
    }

    async fn click_count(&self, code: &str) -> StoreResult<u64> {
        let s = &self.inner;
        let (base, n) = futures::try_join!(
            async {
                let row: Option<(Option<i64>,)> = first_row(
                    s.execute(&s.st.link_count_base, (code,), "reading link")
                        .await?,
                )?;
                Ok::<_, StoreError>(row.map(|(base,)| base.unwrap_or(0)))
            },
            s.counter(code),
        )?;
        // No link, no count: the counter of a deleted link is not removed.
        Ok(base.map_or(0, |base| u64::try_from(n - base).unwrap_or(0)))
    }

    async fn list_clicks(
        &self,
        code: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Click>> {
        let s = &self.inner;
        let owned = code.to_string();
        s.list_days(
            &s.st.click_days_get,
            owned.clone(),
            &s.st.clicks_page,
            move |day| Box::new((owned.clone(), day)),
            limit,
            cursor,
            &parse_all::<Click>,
        )
        .await
    }

    async fn record_incident(&self, incident: &Incident) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        writes.add(
            &s.st.incident_insert,
            (incident.account_id, incident.id, to_json(incident)?),
        )?;
        s.run(writes).await
    }

    async fn list_incidents(
        &self,
        account: AccountId,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Incident>> {
        let s = &self.inner;
        s.list_partition(
            &s.st.incidents_page,
            &(account,),
            limit,
            cursor,
            &parse_all::<Incident>,
        )
        .await
    }

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        writes.add(
            &s.st.endpoint_insert,
            (endpoint.id, endpoint.account_id, to_json(endpoint)?),
        )?;
        writes.add(
            &s.st.account_endpoint_insert,
            (endpoint.account_id, endpoint.id),
        )?;
        s.run(writes).await
    }

    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let s = &self.inner;
        let mut writes = Writes::default();
        writes.add(
            &s.st.endpoint_insert,
            (endpoint.id, endpoint.account_id, to_json(endpoint)?),
        )?;
        s.run(writes).await
    }

    async fn delete_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let s = &self.inner;
        let id = endpoint.id;
        let days = s.days(&s.st.attempt_days_get, id).await?;
        let mut writes = Writes::default();
        writes.add(&s.st.endpoint_delete, (id,))?;
        writes.add(&s.st.account_endpoint_delete, (endpoint.account_id, id))?;
        writes.add(&s.st.outbox_clear, (id,))?;
        writes.add(&s.st.index_clear, (id,))?;
        for day in days {
            writes.add(&s.st.attempts_delete_day, (id, day))?;
        }
        writes.add(&s.st.attempt_days_delete, (id,))?;
        s.run(writes).await
    }

    async fn get_endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>> {
        let s = &self.inner;
        let row: Option<(Option<String>,)> = first_row(
            s.execute(&s.st.endpoint_get, (id,), "reading endpoint")
                .await?,
        )?;
        row.and_then(|(json,)| json)
            .map(|json| from_json(&json))
            .transpose()
    }

    async fn list_endpoints(&self, account: AccountId) -> StoreResult<Vec<Endpoint>> {
        let s = &self.inner;
        let ids: Vec<(Uuid,)> = rows(
            s.execute(&s.st.account_endpoints_get, (account,), "listing endpoints")
                .await?,
        )?;
        let reads: Vec<_> = ids.into_iter().map(|(id,)| self.get_endpoint(id)).collect();
        let endpoints = concurrently(reads, READ_CONCURRENCY).await?;
        Ok(endpoints.into_iter().flatten().collect())
    }

    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let s = &self.inner;
        let pager = s
            .session
            .execute_iter(s.st.endpoints_all.clone(), ())
            .await
            .map_err(|e| StoreError::Backend(format!("listing all endpoints: {e}")))?;
        let texts: Vec<(Option<String>,)> = pager
            .rows_stream::<(Option<String>,)>()
            .map_err(corrupt)?
            .try_collect()
            .await
            .map_err(|e| StoreError::Backend(format!("listing all endpoints: {e}")))?;
        texts
            .into_iter()
            .filter_map(|(json,)| json)
            .map(|json| from_json(&json))
            .collect()
    }

    async fn upsert_deliveries(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        let s = &self.inner;
        let keys = deliveries
            .iter()
            .map(|d| (d.endpoint_id, d.event_id))
            .collect();
        let old = s.outbox_dues(keys).await?;
        let mut writes = Writes::default();
        for d in super::last_versions(deliveries.iter()) {
            // A row that moves leaves its old place; one that stays is overwritten
            // (deleting it in the same batch would win: same write timestamp).
            let old_due = old.get(&(d.endpoint_id, d.event_id)).copied();
            writes.unit(|w| {
                if let Some(due) = old_due
                    && due != due_of(d)
                {
                    w.add(&s.st.outbox_delete, (d.endpoint_id, due, d.event_id))?;
                }
                w.delivery(&s.st, d)
            })?;
        }
        s.run(writes).await
    }

    async fn due_deliveries(&self, endpoint: Uuid, limit: usize) -> StoreResult<Vec<Delivery>> {
        let s = &self.inner;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        // Failed rows sort last (due = i64::MAX) and are left out.
        let texts: Vec<(Option<String>,)> = rows(
            s.execute(
                &s.st.outbox_due,
                (endpoint, FAILED_DUE, limit),
                "reading outbox",
            )
            .await?,
        )?;
        texts
            .into_iter()
            .filter_map(|(json,)| json)
            .map(|json| from_json(&json))
            .collect()
    }

    async fn get_delivery(&self, endpoint: Uuid, event: Uuid) -> StoreResult<Option<Delivery>> {
        let s = &self.inner;
        let Some(&due) = s
            .outbox_dues(vec![(endpoint, event)])
            .await?
            .get(&(endpoint, event))
        else {
            return Ok(None);
        };
        let row: Option<(Option<String>,)> = first_row(
            s.execute(&s.st.outbox_get, (endpoint, due, event), "reading delivery")
                .await?,
        )?;
        row.and_then(|(json,)| json)
            .map(|json| from_json(&json))
            .transpose()
    }

    async fn save_outcomes(&self, outcomes: &[(Attempt, DeliveryUpdate)]) -> StoreResult<()> {
        let s = &self.inner;
        let key = |update: &DeliveryUpdate| match update {
            DeliveryUpdate::Delivered {
                endpoint_id,
                event_id,
            } => (*endpoint_id, *event_id),
            DeliveryUpdate::Save(d) => (d.endpoint_id, d.event_id),
        };
        let keys = outcomes.iter().map(|(_, u)| key(u)).collect();
        let old = s.outbox_dues(keys).await?;
        let mut writes = Writes::default();
        let mut marked = std::collections::HashSet::new();
        for (attempt, _) in outcomes {
            let day = day_of(attempt.id, attempt.at);
            writes.add(
                &s.st.attempt_insert,
                (
                    attempt.endpoint_id,
                    day,
                    attempt.id,
                    to_json(attempt)?,
                    s.attempt_ttl,
                ),
            )?;
            if marked.insert((attempt.endpoint_id, day)) {
                writes.add(
                    &s.st.attempt_day_insert,
                    (attempt.endpoint_id, day, s.attempt_day_ttl),
                )?;
            }
        }
        // Only the last outcome of each delivery counts: that is its final state.
        for update in super::last_updates(outcomes) {
            let k = key(update);
            let (endpoint, event) = k;
            let old_due = old.get(&k).copied();
            writes.unit(|w| match update {
                DeliveryUpdate::Save(d) => {
                    if let Some(due) = old_due
                        && due != due_of(d)
                    {
                        w.add(&s.st.outbox_delete, (endpoint, due, event))?;
                    }
                    w.delivery(&s.st, d)
                }
                DeliveryUpdate::Delivered { .. } => match old_due {
                    Some(due) => {
                        w.add(&s.st.outbox_delete, (endpoint, due, event))?;
                        w.add(&s.st.index_delete, (endpoint, event))
                    }
                    None => Ok(()),
                },
            })?;
        }
        s.run(writes).await
    }

    async fn list_attempts(
        &self,
        endpoint: Uuid,
        status: Option<AttemptStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Attempt>> {
        let s = &self.inner;
        let keep: &Keep<'_, Attempt> = &move |texts: Vec<String>| {
            Box::pin(async move {
                let mut kept = Vec::with_capacity(texts.len());
                for text in &texts {
                    let attempt: Attempt = from_json(text)?;
                    if status.is_none_or(|st| st == attempt.status) {
                        kept.push(attempt);
                    }
                }
                Ok(kept)
            })
        };
        s.list_days(
            &s.st.attempt_days_get,
            endpoint,
            &s.st.attempts_page,
            move |day| Box::new((endpoint, day)),
            limit,
            cursor,
            keep,
        )
        .await
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every write was acknowledged by the cluster at its consistency level.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schema_is_filled_in_and_split() {
        let statements = schema_statements("ks_test", 3);
        assert!(statements[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_test"));
        assert!(statements[0].contains("'replication_factor': 3"));
        assert!(statements.iter().all(|s| !s.contains("{{")));
        assert!(
            statements
                .iter()
                .skip(1)
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS ks_test."))
        );
        assert_eq!(statements.len(), 17);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let state = PagingState::new_from_raw_bytes(&b"abc"[..]);
        let c = encode_partition_cursor(&state).expect("cursor");
        let back = decode_partition_cursor(Some(&c)).expect("decodes");
        assert_eq!(
            back.as_bytes_slice().map(|b| b.to_vec()),
            Some(b"abc".to_vec())
        );
        let d = encode_day_cursor(20_000, Some(&state));
        let (day, back) = decode_day_cursor(Some(&d)).expect("decodes").expect("some");
        assert_eq!(day, 20_000);
        assert_eq!(
            back.as_bytes_slice().map(|b| b.to_vec()),
            Some(b"abc".to_vec())
        );
        let (day, back) = decode_day_cursor(Some(&encode_day_cursor(-3, None)))
            .expect("decodes")
            .expect("some");
        assert_eq!((day, back.as_bytes_slice().is_none()), (-3, true));
        assert!(matches!(
            decode_partition_cursor(Some("%%")),
            Err(StoreError::BadCursor)
        ));
        assert!(matches!(
            decode_partition_cursor(Some(&d)),
            Err(StoreError::BadCursor)
        ));
        assert!(matches!(
            decode_day_cursor(Some(&c)),
            Err(StoreError::BadCursor)
        ));
    }

    #[test]
    fn expiry_buckets_never_fall_behind_now() {
        let now = Utc
            .timestamp_millis_opt(10 * HOUR_MS + 5)
            .single()
            .unwrap_or_default();
        let past = Utc
            .timestamp_millis_opt(HOUR_MS)
            .single()
            .unwrap_or_default();
        let later = Utc
            .timestamp_millis_opt(12 * HOUR_MS)
            .single()
            .unwrap_or_default();
        assert_eq!(expiry_bucket(past, now), 10);
        assert_eq!(expiry_bucket(later, now), 12);
    }

    #[test]
    fn log_days_follow_the_uuid_v7_time() {
        let id = Uuid::now_v7();
        let epoch = Utc.timestamp_millis_opt(0).single().unwrap_or_default();
        assert_eq!(
            day_of(id, epoch),
            day_of_millis(Utc::now().timestamp_millis())
        );
        assert_eq!(day_of(Uuid::nil(), epoch), 0);
    }
}
