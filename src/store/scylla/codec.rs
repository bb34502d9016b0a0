//! Conversions between CQL and our types: JSON payloads, click records, row decoding,
//! LWT outcomes, day/hour buckets and the opaque API cursors.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use scylla::{
    deserialize::row::DeserializeRow,
    response::{PagingState, query_result::QueryResult},
    value::{CqlValue, Row},
};
use uuid::Uuid;

use super::errors::corrupt;
use crate::{
    domain::{Click, Delivery, DeliveryStatus},
    store::{StoreError, StoreResult, click_codec},
};

pub(super) const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Outbox rows of failed deliveries sort after every pending one.
pub(super) const FAILED_DUE: i64 = i64::MAX;
/// Cursor tags: a paging state of one partition, or a day bucket plus one.
const CURSOR_PARTITION: u8 = b'p';
const CURSOR_DAY: u8 = b'd';

/// A click as stored: the compact record both backends keep (see [`click_codec`]).
pub(super) fn click_record(click: &Click) -> Vec<u8> {
    click_codec::encode(click)
}

pub(super) fn from_click_record(bytes: &[u8]) -> StoreResult<Click> {
    click_codec::decode(bytes).ok_or_else(|| corrupt("stored click"))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(corrupt)
}

/// Every row of a result, typed.
pub(super) fn rows<R>(result: QueryResult) -> StoreResult<Vec<R>>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    let rows = result.into_rows_result().map_err(corrupt)?;
    let typed = rows.rows::<R>().map_err(corrupt)?;
    typed.collect::<Result<Vec<R>, _>>().map_err(corrupt)
}

pub(super) fn first_row<R>(result: QueryResult) -> StoreResult<Option<R>>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    Ok(rows(result)?.into_iter().next())
}

/// A lightweight transaction's outcome: applied, and the row's `value` column
/// when it was not (the value that stays).
pub(super) fn lwt_outcome(result: QueryResult) -> StoreResult<(bool, Option<String>)> {
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

pub(super) fn day_of_millis(ms: i64) -> i32 {
    // Days since the epoch fit i32 for any date chrono represents here.
    i32::try_from(ms.div_euclid(DAY_MS)).unwrap_or(i32::MAX)
}

/// The UTC day a log row (click, attempt) is filed under: its UUIDv7's time, so
/// that walking days newest first and ids newest first inside a day is one order.
pub(super) fn day_of(id: Uuid, at: DateTime<Utc>) -> i32 {
    let ms = id
        .get_timestamp()
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            secs as i64 * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or_else(|| at.timestamp_millis());
    day_of_millis(ms)
}

pub(super) fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(HOUR_MS)
}

/// The hour bucket an expiry row is written to: its own hour, or the current one
/// when that has passed. The low-water mark never passes the current hour, so a
/// row is never filed below it, even for a link that expired long ago.
pub(super) fn expiry_bucket(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    hour_of(expires_at).max(hour_of(now))
}

pub(super) fn due_of(delivery: &Delivery) -> i64 {
    match delivery.status {
        DeliveryStatus::Pending => delivery.next_attempt_at.timestamp_millis().max(0),
        DeliveryStatus::Failed => FAILED_DUE,
    }
}

pub(super) fn encode_partition_cursor(state: &PagingState) -> Option<String> {
    let bytes = state.as_bytes_slice()?;
    let mut raw = Vec::with_capacity(1 + bytes.len());
    raw.push(CURSOR_PARTITION);
    raw.extend_from_slice(bytes);
    Some(URL_SAFE_NO_PAD.encode(raw))
}

pub(super) fn decode_partition_cursor(cursor: Option<&str>) -> StoreResult<PagingState> {
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
pub(super) fn encode_day_cursor(day: i32, state: Option<&PagingState>) -> String {
    let mut raw = vec![CURSOR_DAY];
    raw.extend_from_slice(&day.to_be_bytes());
    if let Some(bytes) = state.and_then(PagingState::as_bytes_slice) {
        raw.extend_from_slice(bytes);
    }
    URL_SAFE_NO_PAD.encode(raw)
}

pub(super) fn decode_day_cursor(cursor: Option<&str>) -> StoreResult<Option<(i32, PagingState)>> {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

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
