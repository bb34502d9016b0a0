//! `POST /v1/webhooks/{id}/recover`: the endpoint's failed deliveries created
//! in a time window become pending and due now, in one go.

use axum::{Json, extract::Path, http::StatusCode};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::webhooks::{disabled, owned};
use super::{JsonBody, auth::Caller};
use crate::{
    domain::{DeliveryStatus, Rfc3339},
    store::CreatedWindow,
};

/// Deliveries one call makes pending; the answer says when more were left.
pub const MAX_RECOVERED: usize = 10_000;
/// Deliveries written per store call.
const WRITE_CHUNK: usize = 500;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverWindow {
    /// Deliveries created at or after this time.
    #[schema(value_type = String, format = DateTime)]
    since: Rfc3339,
    /// Deliveries created before this time; absent: now.
    #[schema(value_type = Option<String>, format = DateTime)]
    until: Option<Rfc3339>,
}

pub async fn recover(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RecoverWindow>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let now = Utc::now();
    let window = CreatedWindow {
        since: body.since.0,
        until: body.until.map_or(now, |until| until.0),
    };
    if window.since >= window.until {
        return Err(ApiError::validation(
            "since",
            "since must be before until (or before now when until is absent)",
        ));
    }
    let endpoint = owned(&state, account, &id).await?;
    if !endpoint.enabled {
        return Err(disabled());
    }
    let mut found = state
        .store
        .failed_deliveries(endpoint.id, window, MAX_RECOVERED + 1)
        .await?;
    let more = found.len() > MAX_RECOVERED;
    found.truncate(MAX_RECOVERED);
    for d in &mut found {
        d.status = DeliveryStatus::Pending;
        d.next_attempt_at = now;
    }
    for chunk in found.chunks(WRITE_CHUNK) {
        state.store.upsert_deliveries(chunk).await?;
    }
    // Due in the outbox: a local actor reads it back now; without one here
    // (cluster mode), the owner node's outbox scan finds them.
    if let Some(handle) = state.directory.handle(account, endpoint.id)
        && !found.is_empty()
    {
        handle.reload();
    }
    let mut answer = json!({ "recovered": found.len() });
    if more {
        answer["more"] = json!(true);
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
