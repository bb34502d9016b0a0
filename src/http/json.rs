//! What every `/v1` listing shares: page parameters in, `{"items", "next_cursor"}`
//! out, and timestamps written one way (RFC 3339, milliseconds, `Z`).

use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use crate::store::{Page, Paging};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

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
        Ok(Paging {
            limit,
            cursor: self.cursor,
        })
    }
}

/// A listing's answer.
pub fn listing(items: Vec<Value>, next_cursor: Option<String>) -> Json<Value> {
    Json(json!({ "items": items, "next_cursor": next_cursor }))
}

/// A store page as a listing, each item written by `item`.
pub fn page_json<T>(page: Page<T>, item: impl Fn(&T) -> Value) -> Json<Value> {
    listing(page.items.iter().map(item).collect(), page.next_cursor)
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
