//! `GET/POST /v1/keys`, `DELETE /v1/keys/{id}`: an account's API keys. The
//! whole key is shown once, in the `POST` answer; listings show its prefix.
//! Also `last_used_at`, written at most once a minute per key.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{Json, extract::Path, http::StatusCode};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    JsonBody, SharedState,
    auth::{Caller, token_hash},
    error::{ApiError, ApiResult, check_text},
    json::{PageParams, Query, page_json, timestamp},
};
use crate::{
    cluster::feed::ChangeKind,
    domain::{ApiKey, KeyOwner, random_token},
    metrics::events::{StoreFailed, StoreOp},
    store::Paging,
};

/// A key's `last_used_at` is written at most this often.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);
const MAX_NAME_CHARS: usize = 200;
/// Keys one account may hold: enough for rotation across many services,
/// few enough that counting them is one small read.
pub const MAX_KEYS_PER_ACCOUNT: usize = 100;

/// Makes a new API key: `rl_` and 32 base62 characters (190 bits).
pub fn new_key() -> String {
    random_token("rl_", 32)
}

/// Per-process key bookkeeping: when each key's use was last written, and
/// creations and revocations taking turns (both count the account's keys; two
/// nodes of a cluster may still race, which at worst passes a bound by one).
pub struct KeyState {
    written: Mutex<HashMap<Uuid, Instant>>,
    max_tracked: usize,
    pub changing: tokio::sync::Mutex<()>,
}

impl KeyState {
    pub fn new(max_tracked: usize) -> Self {
        Self {
            written: Mutex::new(HashMap::new()),
            max_tracked,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a use of `key` at `now` should be written: its first in
    /// [`TOUCH_EVERY`]. With the map full of keys used within that time, uses of
    /// other keys go unrecorded until room frees (bounded memory wins).
    pub fn due(&self, key: Uuid, now: Instant) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&at) = written.get(&key) {
            if now.duration_since(at) < TOUCH_EVERY {
                return false;
            }
        } else if written.len() >= self.max_tracked {
            written.retain(|_, at| now.duration_since(*at) < TOUCH_EVERY);
            if written.len() >= self.max_tracked {
                return false;
            }
        }
        written.insert(key, now);
        true
    }

    /// Notes a successful use; the write happens off the request path.
    pub fn used(&self, state: &SharedState, owner: KeyOwner) {
        if !self.due(owner.key, Instant::now()) {
            return;
        }
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_keys(&[(owner, Utc::now())]).await {
                StoreFailed::new(StoreOp::Api, &e).emit();
            }
        });
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Trimmed; no control or bidi characters.
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
}

/// A key name: trimmed, 1 to 200 characters, no control or bidi characters.
pub fn key_name(name: Option<&str>) -> ApiResult<Option<String>> {
    let Some(name) = name.map(str::trim) else {
        return Ok(None);
    };
    check_text("name", name, 1..=MAX_NAME_CHARS)?;
    Ok(Some(name.to_string()))
}

pub async fn create(
    Caller { account, state }: Caller,
    JsonBody(body): JsonBody<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = key_name(body.name.as_deref())?;
    let _turn = state.keys.changing.lock().await;
    let held = state
        .store
        .list_api_keys(account, Paging::new(MAX_KEYS_PER_ACCOUNT, None))
        .await?;
    if held.items.len() >= MAX_KEYS_PER_ACCOUNT {
        return Err(ApiError::conflict(
            None,
            format!("an account holds at most {MAX_KEYS_PER_ACCOUNT} API keys; revoke one first"),
        ));
    }
    let secret = new_key();
    let key = ApiKey::new(account, &secret, name, Utc::now());
    state
        .store
        .insert_api_key(&key, token_hash(&secret))
        .await?;
    state.changes.note(ChangeKind::KeyUpserted, key.id).await;
    let mut answer = key_json(&key);
    answer["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(
    Caller { account, state }: Caller,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let page = state.store.list_api_keys(account, params.paging()?).await?;
    Ok(page_json(page, key_json))
}

pub async fn revoke(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("API key"))?;
    let _turn = state.keys.changing.lock().await;
    let first_two = state
        .store
        .list_api_keys(account, Paging::new(2, None))
        .await?;
    if first_two.items.len() < 2 {
        return Err(if first_two.items.iter().any(|k| k.id == id) {
            ApiError::conflict(
                None,
                "this is the account's last API key; create another before revoking it",
            )
        } else {
            ApiError::not_found("API key")
        });
    }
    if !state.store.delete_api_key(account, id).await? {
        return Err(ApiError::not_found("API key"));
    }
    state.changes.note(ChangeKind::KeyDeleted, id).await;
    Ok(StatusCode::NO_CONTENT)
}

fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "created_at": timestamp(key.created_at),
        "last_used_at": key.last_used_at.map(timestamp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_written_once_a_minute_at_most() {
        let keys = KeyState::new(2);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let t0 = Instant::now();
        assert!(keys.due(a, t0));
        assert!(!keys.due(a, t0 + Duration::from_secs(59)));
        assert!(keys.due(a, t0 + TOUCH_EVERY));
        assert!(keys.due(b, t0));
        // Full of keys used within the minute: c waits for room.
        assert!(!keys.due(c, t0 + Duration::from_secs(30)));
        assert!(keys.due(c, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(key_name(None).unwrap(), None);
        assert_eq!(key_name(Some(" ci ")).unwrap().as_deref(), Some("ci"));
        for bad in ["", "  ", "a\nb", &"x".repeat(201)] {
            assert_eq!(
                key_name(Some(bad)).unwrap_err().field.as_deref(),
                Some("name")
            );
        }
    }
}
