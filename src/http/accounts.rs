//! `POST /v1/accounts` (admin only): a new account and its API key, shown once.

use axum::{Json, extract::State, http::StatusCode};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    JsonBody, SharedState,
    auth::{Admin, token_hash},
    error::{ApiResult, check_text},
};
use crate::{
    cluster::feed::ChangeKind,
    domain::{Account, ApiKey},
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Trimmed; no control or bidi characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

pub async fn create(
    _admin: Admin,
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<NewAccount>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = body.name.trim();
    check_text("name", name, 1..=200)?;
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
