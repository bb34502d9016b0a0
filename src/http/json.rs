//! What every `/v1` listing shares: query parameters in (as JSON errors),
//! `?limit=&cursor=` checked, `{"items", "next_cursor"}` out, and timestamps
//! written one way (RFC 3339, milliseconds, `Z`).

use axum::{Json, extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use crate::store::{Page, Paging};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
/// First byte of every cursor we hand out; a new layout takes a new number.
const CURSOR_VERSION: u8 = 1;
const CURSOR_CHECK_BYTES: usize = 8;

/// Query parameters, each at most once, refused in the contract's JSON shape
/// (axum's own `Query` answers `text/plain` and names no parameter).
/// Parameters a route does not know are ignored.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::malformed(format!("query string: {}", e.body_text())))?
            .0;
        let mut params = Map::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(ApiError::bad_parameter(
                    &name,
                    format!("{name} may be given only once"),
                ));
            }
            params.insert(name, Value::String(value));
        }
        serde_json::from_value(Value::Object(params))
            .map(Query)
            .map_err(|e| ApiError::malformed(format!("query string: {e}")))
    }
}

/// `?limit=&cursor=` of a listing.
#[derive(Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageParams {
    pub fn paging(self) -> ApiResult<Paging> {
        let limit = match self.limit {
            None => DEFAULT_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_parameter(
                        "limit",
                        format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                    ));
                }
            },
        };
        let cursor = self
            .cursor
            .map(|c| {
                open_cursor(&c).ok_or_else(|| {
                    ApiError::bad_parameter("cursor", "cursor is not one this server gave out")
                })
            })
            .transpose()?;
        Ok(Paging { limit, cursor })
    }
}

/// The store's cursor as callers see it: version byte, the store's cursor, and
/// a check over both, in unpadded base64url. The check is not a secret (pages
/// are scoped to the caller's account by the store whatever the cursor says);
/// it makes a made-up, truncated or extended cursor a 400 instead of a page
/// from somewhere unexpected.
fn seal_cursor(inner: &str) -> String {
    let mut raw = Vec::with_capacity(1 + inner.len() + CURSOR_CHECK_BYTES);
    raw.push(CURSOR_VERSION);
    raw.extend_from_slice(inner.as_bytes());
    let check = Sha256::digest(&raw);
    raw.extend_from_slice(&check[..CURSOR_CHECK_BYTES]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The store's cursor inside a sealed one; `None` unless every byte checks out
/// (the decoder refuses padding and non-zero trailing bits, so one raw cursor
/// has one spelling).
fn open_cursor(sealed: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let (body, check) = raw.split_at(raw.len().checked_sub(CURSOR_CHECK_BYTES)?);
    let (&version, inner) = body.split_first()?;
    let expected = Sha256::digest(body);
    if version != CURSOR_VERSION || check != &expected[..CURSOR_CHECK_BYTES] {
        return None;
    }
    String::from_utf8(inner.to_vec()).ok()
}

/// A page of a small listing held in memory, ordered by `key`; the cursor is
/// the last key shown.
pub fn page_in_memory<T>(
    mut items: Vec<T>,
    paging: &Paging,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    items.sort_by_cached_key(&key);
    if let Some(after) = &paging.cursor {
        items.retain(|item| key(item) > *after);
    }
    let more = items.len() > paging.limit;
    items.truncate(paging.limit);
    let next_cursor = more.then(|| items.last().map(&key)).flatten();
    Page { items, next_cursor }
}

/// A listing's answer.
pub fn listing(items: Vec<Value>, next_cursor: Option<String>) -> Json<Value> {
    let next_cursor = next_cursor.as_deref().map(seal_cursor);
    Json(json!({ "items": items, "next_cursor": next_cursor }))
}

/// A store page as a listing, each item written by `item`.
pub fn page_json<T>(page: Page<T>, item: impl Fn(&T) -> Value) -> Json<Value> {
    listing(page.items.iter().map(item).collect(), page.next_cursor)
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<&str>, cursor: Option<&str>) -> PageParams {
        PageParams {
            limit: limit.map(str::to_string),
            cursor: cursor.map(str::to_string),
        }
    }

    #[test]
    fn sealed_cursors_round_trip_and_refuse_anything_else() {
        for inner in ["", "AAAA", "c29tZSBrZXk", "x".repeat(500).as_str()] {
            assert_eq!(open_cursor(&seal_cursor(inner)).as_deref(), Some(inner));
        }
        let sealed = seal_cursor("c29tZSBrZXk");
        for junk in ["A", "AA", "AAAA", "xyz", "="] {
            assert_eq!(open_cursor(&format!("{sealed}{junk}")), None, "{junk}");
        }
        assert_eq!(open_cursor(&sealed[..sealed.len() - 1]), None);
        for made_up in ["", "AAAA", "@@@", "AAAAAAAAAAAAAAAAAAAA", "c29tZSBrZXk"] {
            assert_eq!(open_cursor(made_up), None, "{made_up}");
        }
        // Another version byte with a matching check is still refused.
        let mut raw = vec![CURSOR_VERSION + 1];
        raw.extend_from_slice(b"key");
        let check = Sha256::digest(&raw);
        raw.extend_from_slice(&check[..CURSOR_CHECK_BYTES]);
        assert_eq!(open_cursor(&URL_SAFE_NO_PAD.encode(raw)), None);
    }

    #[test]
    fn page_params_name_the_bad_one() {
        assert_eq!(params(None, None).paging().unwrap(), Paging::new(50, None));
        for limit in ["abc", "0", "-1", "1001", " 5"] {
            let err = params(Some(limit), None).paging().unwrap_err();
            assert_eq!(err.field.as_deref(), Some("limit"), "{limit}");
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        }
        let err = params(None, Some("AAAA")).paging().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("cursor"));
        let sealed = seal_cursor("inner");
        assert_eq!(
            params(Some("7"), Some(&sealed)).paging().unwrap(),
            Paging::new(7, Some("inner"))
        );
    }

    #[test]
    fn in_memory_pages_walk_everything_once() {
        let items: Vec<u32> = vec![5, 3, 9, 1, 7];
        let key = |n: &u32| format!("{n:03}");
        let mut paging = Paging::new(2, None);
        let mut seen = Vec::new();
        loop {
            let page = page_in_memory(items.clone(), &paging, key);
            seen.extend(page.items);
            match page.next_cursor {
                Some(c) => paging.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, [1, 3, 5, 7, 9]);
        let exact = page_in_memory(items, &Paging::new(5, None), key);
        assert_eq!(exact.next_cursor, None);
    }
}
