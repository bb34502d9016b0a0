//! `/v1/links`: create, list, read, change, delete links and page their clicks.
//! Every change goes store first, then cache, then the event bus.

use axum::extract::Path;
use axum::{Json, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::filter::{Verdict, filtered_page, link_matches};
use super::json::{PageParams, Query, listing, timestamp};
use super::{JsonBody, SharedState, auth::Caller, openapi};
use crate::{
    cluster::feed::ChangeKind,
    domain::{
        AccountId, Click, FraudAction, Link, REDIRECT_STATUSES, Rfc3339, generate_code,
        normalize_tags, validate_code, validate_destination,
    },
    events::{Change, Event},
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    #[schema(format = "uri", max_length = 8192)]
    destination: String,
    /// Absent: 7 generated base62 characters.
    #[schema(schema_with = openapi::code_or_null)]
    code: Option<String>,
    #[schema(schema_with = openapi::expiry)]
    expires_at: Option<Rfc3339>,
    /// Absent: the server's `redirect.default_status`.
    #[schema(schema_with = openapi::redirect_status_or_null)]
    redirect_status: Option<u16>,
    #[serde(default)]
    tags: Vec<String>,
    /// `null` or absent: the server's `fraud.policy`.
    #[schema(schema_with = openapi::fraud_policy)]
    fraud_policy: Option<FraudAction>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    #[schema(format = "uri", max_length = 8192)]
    destination: Option<String>,
    /// Absent: unchanged; `null`: never expires.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = openapi::expiry)]
    expires_at: Option<Option<Rfc3339>>,
    #[schema(schema_with = openapi::redirect_status_or_null)]
    redirect_status: Option<u16>,
    disabled: Option<bool>,
    tags: Option<Vec<String>>,
    /// Absent: unchanged; `null`: the server's `fraud.policy`.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = openapi::fraud_policy)]
    fraud_policy: Option<Option<FraudAction>>,
}

fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

pub fn link_json(link: &Link, base_url: &str, click_count: u64) -> Value {
    json!({
        "code": link.code,
        "short_url": format!("{base_url}/{}", link.code),
        "destination": link.destination,
        "redirect_status": link.redirect_status,
        "created_at": timestamp(link.created_at),
        "updated_at": timestamp(link.updated_at),
        "expires_at": link.expires_at.map(timestamp),
        "disabled": link.disabled,
        "disabled_reason": link.disabled_reason,
        "tags": link.tags,
        "fraud_policy": link.fraud_policy,
        "click_count": click_count,
    })
}

pub(crate) fn click_json(click: &Click) -> Value {
    json!({
        "id": click.id,
        "at": timestamp(click.at),
        "ip": click.ip,
        "user_agent": click.user_agent,
        "referrer": click.referrer,
        "referrer_host": click.referrer_host,
        "location": click.location,
        "device": click.device,
        "browser": click.browser,
        "os": click.os,
        "is_bot": click.is_bot,
    })
}

fn check_destination(destination: &str) -> ApiResult<()> {
    validate_destination(destination)
        .map_err(|e| ApiError::validation("destination", e.to_string()))
}

fn check_status(status: u16) -> ApiResult<u16> {
    if REDIRECT_STATUSES.contains(&status) {
        Ok(status)
    } else {
        Err(ApiError::validation(
            "redirect_status",
            "redirect_status must be one of 301, 302, 307, 308",
        ))
    }
}

fn check_tags(tags: Vec<String>) -> ApiResult<Vec<String>> {
    normalize_tags(tags).map_err(|e| ApiError::validation("tags", e.to_string()))
}

fn check_expiry(at: Rfc3339, now: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    at.future(now)
        .map_err(|e| ApiError::validation("expires_at", format!("expires_at {e}")))
}

/// The caller's link, or 404 (also when it belongs to another account).
pub(crate) async fn owned_link(
    state: &SharedState,
    account: AccountId,
    code: &str,
) -> ApiResult<Link> {
    match state.store.get_link(code).await? {
        Some(link) if link.account_id == account => Ok(link),
        _ => Err(ApiError::not_found("link")),
    }
}

pub async fn create(
    Caller { account, state }: Caller,
    JsonBody(body): JsonBody<NewLink>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_destination(&body.destination)?;
    let default_status = state.config.redirect.default_status;
    let status = check_status(body.redirect_status.unwrap_or(default_status))?;
    let tags = check_tags(body.tags)?;
    if let Some(code) = &body.code {
        validate_code(code).map_err(|e| ApiError::validation("code", e.to_string()))?;
    }
    let now = Utc::now();
    let expires_at = body
        .expires_at
        .map(|at| check_expiry(at, now))
        .transpose()?;
    let mut link = Link {
        code: String::new(),
        account_id: account,
        destination: body.destination,
        redirect_status: status,
        created_at: now,
        updated_at: now,
        expires_at,
        disabled: false,
        disabled_reason: None,
        tags,
        fraud_policy: body.fraud_policy,
    };
    let base = &state.config.server.public_base_url;
    // 62^7 codes: a collision is rare, several in a row are a broken store.
    let tries = if body.code.is_some() { 1 } else { 16 };
    for _ in 0..tries {
        link.code = body.code.clone().unwrap_or_else(generate_code);
        let event = Event::link_created(&link, base);
        let deliveries = state.fanout.prepare(&event);
        if state.store.insert_link(&link, &deliveries).await? {
            state.cache.put(&link);
            // Other nodes may have cached the code as unknown.
            state
                .changes
                .note(ChangeKind::LinkUpserted, &link.code)
                .await;
            state.fanout.committed(event, deliveries);
            return Ok((StatusCode::CREATED, Json(link_json(&link, base, 0))));
        }
    }
    match body.code {
        Some(code) => Err(ApiError::conflict(
            Some("code"),
            format!("code {code:?} is already taken"),
        )),
        None => Err(ApiError::internal("could not find a free code")),
    }
}

/// `?limit=&cursor=` and the `tag`/`q` filters of the links listing.
#[derive(Deserialize)]
pub struct LinkListParams {
    #[serde(flatten)]
    page: PageParams,
    tag: Option<String>,
    q: Option<String>,
}

pub async fn list(
    Caller { account, state }: Caller,
    Query(params): Query<LinkListParams>,
) -> ApiResult<Json<Value>> {
    let (tag, q) = (params.tag.as_deref(), params.q.as_deref());
    let read = |paging| state.store.list_links(account, paging);
    let keep = |link: &Link| match link_matches(link, tag, q) {
        true => Verdict::Keep,
        false => Verdict::Skip,
    };
    let page = filtered_page(params.page.paging()?, read, keep).await?;
    let base = &state.config.server.public_base_url;
    let mut items = Vec::with_capacity(page.items.len());
    for link in &page.items {
        let count = state.store.click_count(&link.code).await?;
        items.push(link_json(link, base, count));
    }
    Ok(listing(items, page.next_cursor))
}

pub async fn read(
    Caller { account, state }: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let link = owned_link(&state, account, &code).await?;
    let count = state.store.click_count(&code).await?;
    Ok(Json(link_json(
        &link,
        &state.config.server.public_base_url,
        count,
    )))
}

pub async fn update(
    Caller { account, state }: Caller,
    Path(code): Path<String>,
    JsonBody(patch): JsonBody<LinkPatch>,
) -> ApiResult<Json<Value>> {
    patch
        .destination
        .as_deref()
        .map(check_destination)
        .transpose()?;
    patch.redirect_status.map(check_status).transpose()?;
    let tags = patch.tags.map(check_tags).transpose()?;
    let expires_at = patch
        .expires_at
        .map(|at| at.map(|at| check_expiry(at, Utc::now())).transpose())
        .transpose()?;
    let old = owned_link(&state, account, &code).await?;
    let mut link = old.clone();
    let mut changes = Vec::new();
    if let Some(destination) = patch.destination.filter(|d| *d != old.destination) {
        changes.push(change("destination", &old.destination, &destination));
        link.destination = destination;
    }
    if let Some(expires_at) = expires_at.filter(|e| *e != old.expires_at) {
        changes.push(change(
            "expires_at",
            &old.expires_at.map(timestamp),
            &expires_at.map(timestamp),
        ));
        link.expires_at = expires_at;
    }
    if let Some(status) = patch.redirect_status.filter(|s| *s != old.redirect_status) {
        changes.push(change("redirect_status", &old.redirect_status, &status));
        link.redirect_status = status;
    }
    if let Some(disabled) = patch.disabled.filter(|d| *d != old.disabled) {
        changes.push(change("disabled", &old.disabled, &disabled));
        link.disabled = disabled;
        link.disabled_reason = disabled.then(|| "api".to_string());
    }
    if let Some(tags) = tags.filter(|t| *t != old.tags) {
        changes.push(change("tags", &old.tags, &tags));
        link.tags = tags;
    }
    if let Some(policy) = patch.fraud_policy.filter(|p| *p != old.fraud_policy) {
        changes.push(change("fraud_policy", &old.fraud_policy, &policy));
        link.fraud_policy = policy;
    }
    let base = &state.config.server.public_base_url;
    if !changes.is_empty() {
        link.updated_at = Utc::now();
        let event = Event::link_updated(&link, base, &changes, None);
        let deliveries = state.fanout.prepare(&event);
        state.store.update_link(&link, &deliveries).await?;
        state.cache.put(&link);
        state
            .changes
            .note(ChangeKind::LinkUpserted, &link.code)
            .await;
        if let Some(fraud) = state
            .fraud
            .as_ref()
            .filter(|_| old.disabled && !link.disabled)
        {
            fraud.reenabled(&link.code);
        }
        state.fanout.committed(event, deliveries);
    }
    let count = state.store.click_count(&code).await?;
    Ok(Json(link_json(&link, base, count)))
}

fn change<T: serde::Serialize + ?Sized>(field: &'static str, old: &T, new: &T) -> Change {
    Change {
        field,
        old: json!(old),
        new: json!(new),
    }
}

pub async fn delete(
    Caller { account, state }: Caller,
    Path(code): Path<String>,
) -> ApiResult<StatusCode> {
    let link = owned_link(&state, account, &code).await?;
    let event = Event::link_deleted(&link, &state.config.server.public_base_url);
    let deliveries = state.fanout.prepare(&event);
    state.store.delete_link(&link, &deliveries).await?;
    state.cache.remove(&code);
    state.changes.note(ChangeKind::LinkDeleted, &code).await;
    state.fanout.committed(event, deliveries);
    Ok(StatusCode::NO_CONTENT)
}
