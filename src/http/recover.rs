//! `POST /v1/webhooks/{id}/recover`: the endpoint's failed deliveries created
//! in a time window become pending and due now, in one go.

use axum::{Json, extract::Path, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::webhooks::{disabled, owned};
use super::{JsonBody, SharedState, auth::Caller};
use crate::{domain::Rfc3339, store::CreatedWindow};

/// Deliveries one call makes pending; the answer says when more were left.
pub const MAX_RECOVERED: usize = 10_000;
/// Deliveries read and written per store call.
const CHUNK: usize = 500;

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
    let (recovered, more) = make_pending(&state, endpoint.id, window, now).await?;
    // Due in the outbox: a local actor reads it back now; without one here
    // (cluster mode), the owner node's outbox scan finds them.
    if let Some(handle) = state.directory.handle(account, endpoint.id)
        && recovered > 0
    {
        handle.reload();
    }
    let mut answer = json!({ "recovered": recovered });
    if more {
        answer["more"] = json!(true);
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Makes the window's failed deliveries pending, due `now`, a chunk at a
/// time (memory stays bounded), up to [`MAX_RECOVERED`]. Each chunk starts
/// after the last one, so a delivery that fails again meanwhile (its receiver
/// still down) is not counted twice. Returns how many, and whether more are left.
async fn make_pending(
    state: &SharedState,
    endpoint: Uuid,
    window: CreatedWindow,
    now: DateTime<Utc>,
) -> ApiResult<(usize, bool)> {
    let mut recovered = 0;
    let mut after = None;
    while recovered < MAX_RECOVERED {
        let want = (MAX_RECOVERED - recovered).min(CHUNK);
        let mut found = state
            .store
            .failed_deliveries(endpoint, window, after, want)
            .await?;
        for d in &mut found {
            d.due_again(now);
        }
        state.store.upsert_deliveries(&found).await?;
        recovered += found.len();
        after = found.last().map(|d| d.event_id);
        if found.len() < want {
            return Ok((recovered, false));
        }
    }
    let left = state
        .store
        .failed_deliveries(endpoint, window, after, 1)
        .await?;
    Ok((recovered, !left.is_empty()))
}
