//! `GET /v1/fraud/incidents`: the caller's links the fraud detector disabled.

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::{SharedState, auth::Caller, error::ApiResult, links::PageParams};

pub async fn incidents(
    Caller(account): Caller,
    State(state): State<SharedState>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let page = state
        .store
        .list_incidents(account, params.limit()?, params.cursor.as_deref())
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|i| {
            json!({
                "code": i.code,
                "ip_range": i.ip_range,
                "clicks": i.clicks,
                "window": format!("{}s", i.window_secs),
                "window_secs": i.window_secs,
                "at": i.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
        })
        .collect();
    Ok(Json(
        json!({ "items": items, "next_cursor": page.next_cursor }),
    ))
}
