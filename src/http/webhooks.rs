//! `/v1/webhooks`: endpoints (create, list, read, change, delete), secret
//! rotation, test events, the attempts log and retries of failed deliveries.

use axum::extract::Path;
use axum::{Json, http::StatusCode};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::{ApiError, ApiResult, check_text};
use super::json::{PageParams, Query, page_in_memory, page_json, timestamp};
use super::{JsonBody, SharedState, auth::Caller};
use crate::{
    cluster::feed::ChangeKind,
    domain::{
        AccountId, Attempt, AttemptStatus, DeliveryStatus, Endpoint, Secret, dedup_keep_order,
    },
    events::{Event, EventType},
    store::{AttemptsOf, EndpointWrite, Paging},
    webhooks::{
        delivery,
        endpoint::{EndpointMsg, RetryError},
        signer,
        supervisor::SupervisorMsg,
        target,
    },
};

/// Rotated-out secrets kept signing (newest first): every one adds a
/// signature to each header, and receivers cap header sizes.
const PREVIOUS_SECRETS: usize = 2;
/// How long a rotated-out secret keeps signing.
const ROTATION_OVERLAP_HOURS: i64 = 24;
const MAX_RATE_LIMIT: u32 = 100_000;
/// Read-change-write rounds an API change makes against concurrent writers.
const WRITE_TRIES: usize = 5;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    url: String,
    #[schema(schema_with = super::openapi::event_names)]
    events: Vec<String>,
    /// Absent: the server's `webhooks.default_rate_limit_per_sec`.
    #[schema(minimum = 1, maximum = 100_000)]
    rate_limit_per_sec: Option<u32>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    url: Option<String>,
    #[schema(schema_with = super::openapi::event_names_or_null)]
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    #[schema(minimum = 1, maximum = 100_000)]
    rate_limit_per_sec: Option<u32>,
    description: Option<String>,
}

fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "rate_limit_per_sec": e.rate_limit_per_sec,
        "description": e.description,
        "created_at": timestamp(e.created_at),
        "updated_at": timestamp(e.updated_at),
    })
}

fn with_secret(e: &Endpoint, secret: &str) -> Value {
    let mut body = endpoint_json(e);
    body["secret"] = json!(secret);
    body
}

/// The filter to store: known types only, each once; `"*"` alone if present.
fn check_events(events: Vec<String>) -> ApiResult<Vec<String>> {
    // Every known type plus "*": a longer list must repeat itself.
    let max = EventType::ALL.len() + 1;
    if events.is_empty() || events.len() > max {
        return Err(ApiError::validation(
            "events",
            format!("events must list 1 to {max} event types, or be [\"*\"]"),
        ));
    }
    if let Some(name) = events
        .iter()
        .find(|name| *name != "*" && EventType::parse(name).is_none())
    {
        let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        return Err(ApiError::validation(
            "events",
            format!(
                "unknown event type {name:?}; known: {}, or \"*\"",
                known.join(", ")
            ),
        ));
    }
    if events.iter().any(|name| name == "*") {
        return Ok(vec!["*".to_string()]);
    }
    Ok(dedup_keep_order(events))
}

fn check_rate(rate: u32) -> ApiResult<u32> {
    if (1..=MAX_RATE_LIMIT).contains(&rate) {
        Ok(rate)
    } else {
        Err(ApiError::validation(
            "rate_limit_per_sec",
            format!("rate_limit_per_sec must be from 1 to {MAX_RATE_LIMIT}"),
        ))
    }
}

fn check_description(description: &str) -> ApiResult<()> {
    check_text("description", description, 0..=500)
}

async fn check_url(state: &SharedState, url: &str) -> ApiResult<()> {
    target::check(url, state.config.webhooks.allow_private_targets)
        .await
        .map(|_| ())
        .map_err(|e| ApiError::validation("url", e.to_string()))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    id.parse()
        .map_err(|_| ApiError::not_found("webhook endpoint"))
}

pub(super) async fn owned(
    state: &SharedState,
    account: AccountId,
    id: &str,
) -> ApiResult<Endpoint> {
    match state.store.get_endpoint(parse_id(id)?).await? {
        Some(e) if e.account_id == account => Ok(e),
        _ => Err(ApiError::not_found("webhook endpoint")),
    }
}

/// Reads the endpoint, applies `change` and writes it back compare-and-set. A
/// write in between (its actor, another request) makes it read and apply
/// again, up to [`WRITE_TRIES`] times, then 409; a delete in between makes it
/// 404, never a re-created endpoint.
async fn change_endpoint(
    state: &SharedState,
    account: AccountId,
    id: &str,
    change: impl Fn(&mut Endpoint),
) -> ApiResult<Endpoint> {
    for _ in 0..WRITE_TRIES {
        let mut endpoint = owned(state, account, id).await?;
        let expected = endpoint.version;
        change(&mut endpoint);
        endpoint.version = expected + 1;
        match state.store.update_endpoint(expected, &endpoint).await? {
            EndpointWrite::Written => {
                upsert(state, &endpoint).await;
                return Ok(endpoint);
            }
            EndpointWrite::Stale => continue,
            EndpointWrite::Gone => return Err(ApiError::not_found("webhook endpoint")),
        }
    }
    Err(ApiError::conflict(
        None,
        "the endpoint kept changing while this request wrote it; try again",
    ))
}

/// The endpoint was written: this node follows at once, the others through the feed.
async fn upsert(state: &SharedState, endpoint: &Endpoint) {
    let _ = state
        .webhooks
        .cast(SupervisorMsg::Upsert(Box::new(endpoint.clone())));
    state
        .changes
        .note(ChangeKind::EndpointUpserted, endpoint.id)
        .await;
}

pub async fn create(
    Caller { account, state }: Caller,
    JsonBody(body): JsonBody<NewEndpoint>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let events = check_events(body.events)?;
    let default_rate = state.config.webhooks.default_rate_limit_per_sec;
    let rate = check_rate(body.rate_limit_per_sec.unwrap_or(default_rate))?;
    check_description(&body.description)?;
    check_url(&state, &body.url).await?;
    // Counting and inserting take turns, so two creates cannot both slip under the limit.
    let _turn = state.endpoint_creation.lock().await;
    let max = state.config.webhooks.max_endpoints_per_account;
    // The directory holds every endpoint: counting there keeps a create O(1)
    // in the account's endpoint count.
    if state.directory.count(account) >= max as usize {
        return Err(ApiError::conflict(
            None,
            format!("an account may have at most {max} webhook endpoints; delete one first"),
        ));
    }
    let now = Utc::now();
    let secret = signer::new_secret();
    let endpoint = Endpoint {
        id: Uuid::now_v7(),
        account_id: account,
        url: body.url,
        events,
        enabled: true,
        disabled_reason: None,
        rate_limit_per_sec: rate,
        description: body.description,
        secrets: vec![Secret {
            value: secret.clone(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        failed_streak: 0,
        version: 0,
    };
    state.store.insert_endpoint(&endpoint).await?;
    // Counted before the turn ends; the supervisor's own upsert finds it there.
    state.directory.upsert(&endpoint);
    upsert(&state, &endpoint).await;
    Ok((StatusCode::CREATED, Json(with_secret(&endpoint, &secret))))
}

pub async fn list(
    Caller { account, state }: Caller,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let paging = params.paging()?;
    // At most `max_endpoints_per_account`: paged in memory, oldest first.
    let endpoints = state.store.list_endpoints(account).await?;
    let page = page_in_memory(endpoints, &paging, |e| e.id.to_string());
    Ok(page_json(page, endpoint_json))
}

pub async fn read(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(endpoint_json(&owned(&state, account, &id).await?)))
}

pub async fn update(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<EndpointPatch>,
) -> ApiResult<Json<Value>> {
    let events = patch.events.map(check_events).transpose()?;
    patch.rate_limit_per_sec.map(check_rate).transpose()?;
    patch
        .description
        .as_deref()
        .map(check_description)
        .transpose()?;
    if let Some(url) = &patch.url {
        check_url(&state, url).await?;
    }
    let now = Utc::now();
    let endpoint = change_endpoint(&state, account, &id, |endpoint| {
        if let Some(url) = &patch.url {
            endpoint.url = url.clone();
        }
        if let Some(events) = &events {
            endpoint.events = events.clone();
        }
        if let Some(rate) = patch.rate_limit_per_sec {
            endpoint.rate_limit_per_sec = rate;
        }
        if let Some(description) = &patch.description {
            endpoint.description = description.clone();
        }
        if let Some(enabled) = patch.enabled {
            if enabled && !endpoint.enabled {
                endpoint.disabled_reason = None;
                endpoint.failed_streak = 0;
            }
            if !enabled && endpoint.enabled {
                endpoint.disabled_reason = Some("disabled through the API".into());
            }
            endpoint.enabled = enabled;
        }
        endpoint.updated_at = now;
    })
    .await?;
    Ok(Json(endpoint_json(&endpoint)))
}

pub async fn delete(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let endpoint = owned(&state, account, &id).await?;
    // The actor stops first, so it cannot write outcomes for rows we delete.
    ractor::call!(state.webhooks, SupervisorMsg::Remove, endpoint.id)
        .map_err(|e| ApiError::internal(format!("stopping the endpoint actor: {e}")))?;
    state.directory.remove(endpoint.account_id, endpoint.id);
    state.store.delete_endpoint(&endpoint).await?;
    state
        .changes
        .note(ChangeKind::EndpointDeleted, endpoint.id)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate_secret(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let now = Utc::now();
    let overlap_end = now + Duration::hours(ROTATION_OVERLAP_HOURS);
    let secret = signer::new_secret();
    let endpoint = change_endpoint(&state, account, &id, |endpoint| {
        let mut secrets = vec![Secret {
            value: secret.clone(),
            expires_at: None,
        }];
        secrets.extend(
            endpoint
                .secrets
                .iter()
                .filter(|s| s.expires_at.is_none_or(|at| at > now))
                .take(PREVIOUS_SECRETS)
                .map(|s| Secret {
                    value: s.value.clone(),
                    expires_at: Some(s.expires_at.map_or(overlap_end, |at| at.min(overlap_end))),
                }),
        );
        endpoint.secrets = secrets;
        endpoint.updated_at = now;
    })
    .await?;
    let mut body = with_secret(&endpoint, &secret);
    body["previous_secret_expires_at"] = json!(timestamp(overlap_end));
    Ok(Json(body))
}

pub async fn send_test(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let endpoint = owned(&state, account, &id).await?;
    let event = Event::webhook_test(account, endpoint.id);
    let row = delivery(endpoint.id, &event);
    state
        .store
        .upsert_deliveries(std::slice::from_ref(&row))
        .await?;
    state.fanout.committed(event.clone(), vec![row]);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event_id": event.id, "type": "webhook.test" })),
    ))
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "event_id": a.event_id,
        "type": a.event_type,
        "attempt": a.attempt,
        "status": a.status,
        "status_code": a.status_code,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "next_attempt_at": a.next_attempt_at.map(timestamp),
        "at": timestamp(a.at),
        "response_body": a.response_body,
    })
}

#[derive(Deserialize)]
pub struct DeliveryParams {
    status: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

pub async fn deliveries(
    Caller { account, state }: Caller,
    Path(id): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> ApiResult<Json<Value>> {
    let endpoint = owned(&state, account, &id).await?;
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(AttemptStatus::parse(s).ok_or_else(|| {
            ApiError::bad_parameter("status", "status must be pending, succeeded or failed")
        })?),
    };
    let which = AttemptsOf::new(endpoint.id, status);
    let page = state
        .store
        .list_attempts(which, params.page.paging()?)
        .await?;
    Ok(page_json(page, attempt_json))
}

pub async fn retry(
    Caller { account, state }: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let endpoint = owned(&state, account, &id).await?;
    let event_id: Uuid = event_id
        .parse()
        .map_err(|_| ApiError::not_found("delivery"))?;
    let actor = state
        .directory
        .handle(account, endpoint.id)
        .and_then(|h| h.actor.get());
    if actor.is_none() && endpoint.enabled && state.directory.is_cluster() {
        return retry_in_store(&state, endpoint.id, event_id).await;
    }
    let handle = actor.ok_or_else(disabled)?;
    let result = ractor::call!(handle, EndpointMsg::Retry, event_id)
        .map_err(|e| ApiError::internal(format!("endpoint actor unavailable: {e}")))?;
    match result {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "event_id": event_id, "status": "pending" })),
        )),
        Err(RetryError::NotFound) => Err(missing_delivery(&state, endpoint.id, event_id).await),
        Err(e @ RetryError::NotFailed) => Err(ApiError::conflict(None, e.to_string())),
        Err(RetryError::Store(e)) => Err(ApiError::unavailable(e)),
    }
}

/// The answer to retrying or recovering deliveries of a disabled endpoint.
pub(super) fn disabled() -> ApiError {
    ApiError::conflict(
        None,
        "the endpoint is disabled; enable it to retry deliveries",
    )
}

/// Cluster mode, the endpoint's actor runs on another node: the delivery is
/// made due again in the outbox, where its owner's scan finds it.
async fn retry_in_store(
    state: &SharedState,
    endpoint: Uuid,
    event_id: Uuid,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(mut delivery) = state.store.get_delivery(endpoint, event_id).await? else {
        return Err(missing_delivery(state, endpoint, event_id).await);
    };
    if delivery.status != DeliveryStatus::Failed {
        return Err(ApiError::conflict(None, RetryError::NotFailed.to_string()));
    }
    delivery.due_again(Utc::now());
    state
        .store
        .upsert_deliveries(std::slice::from_ref(&delivery))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event_id": event_id, "status": "pending" })),
    ))
}

/// Succeeded attempts looked through to tell a delivered event from an unknown one.
const DELIVERED_SCAN: usize = 1000;

/// No outbox row: a success deleted it (409, nothing to retry), or there never
/// was one (404). The attempts log tells, newest first, within a bounded scan.
async fn missing_delivery(state: &SharedState, endpoint: Uuid, event_id: Uuid) -> ApiError {
    let which = AttemptsOf::new(endpoint, Some(AttemptStatus::Succeeded));
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    while seen < DELIVERED_SCAN {
        let paging = Paging::new(100, cursor.as_deref());
        let Ok(page) = state.store.list_attempts(which, paging).await else {
            break;
        };
        if page.items.iter().any(|a| a.event_id == event_id) {
            return ApiError::conflict(None, "the event was already delivered; nothing to retry");
        }
        seen += page.items.len();
        match page.next_cursor {
            Some(next) if !page.items.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    ApiError::not_found("delivery")
}
