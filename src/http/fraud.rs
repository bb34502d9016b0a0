//! `GET /v1/fraud/incidents`: the caller's links the fraud detector acted on,
//! and what it did (`action`: `block_range` or `disable_link`).

use axum::Json;
use serde_json::{Value, json};

use super::json::{PageParams, Query, page_json, timestamp};
use super::{auth::Caller, error::ApiResult};
use crate::domain::Incident;

pub async fn incidents(
    Caller { account, state }: Caller,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let page = state
        .store
        .list_incidents(account, params.paging()?)
        .await?;
    Ok(page_json(page, incident_json))
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "code": i.code,
        "ip_range": i.ip_range,
        "clicks": i.clicks,
        "window": format!("{}s", i.window_secs),
        "window_secs": i.window_secs,
        "at": timestamp(i.at),
        "action": i.action.as_str(),
    })
}
