//! `POST /v1/accounts` (admin only): a new account and its API key, shown once.

use axum::{Json, extract::State, http::StatusCode};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    JsonBody, SharedState,
    auth::{Admin, token_hash},
    error::{ApiError, ApiResult},
};
use crate::{
    cluster::feed::ChangeKind,
    domain::{Account, ApiKey, validate_text},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    name: String,
}

pub async fn create(
    _admin: Admin,
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<NewAccount>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation(
            "name",
            "name must be 1 to 200 characters",
        ));
    }
    validate_text(name).map_err(|e| ApiError::validation("name", format!("name {e}")))?;
    let account = Account {
        id: Uuid::now_v7(),
        name: name.to_string(),
        created_at: Utc::now(),
    };
    let api_key = super::keys::new_key();
    let key = ApiKey::new(account.id, &api_key, None, account.created_at);
    state
        .store
        .create_account(&account, &key, token_hash(&api_key))
        .await?;
    state
        .changes
        .note(ChangeKind::AccountUpserted, account.id)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": account.id, "name": account.name, "api_key": api_key })),
    ))
}
