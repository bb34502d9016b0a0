//! Live clicks over server-sent events: `POST /v1/clicks/stream-token` and
//! `GET /v1/clicks/stream[?code=]`. Each open stream has a forwarder task that
//! takes the account's clicks from [`LiveClicks`] into the connection's
//! bounded queue; a reader that lets the queue fill is sent `event: dropped`
//! and closed (counted), so a slow reader never holds the others back.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Body,
    extract::{FromRequestParts, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::error::{ApiError, ApiResult};
use super::json::{Query, timestamp};
use super::{
    SharedState,
    auth::Caller,
    links::{click_json, owned_link},
};
use crate::{
    clicks::live::{LiveBatch, StreamSlot, TOKEN_TTL_SECS, issue_token, verify_token},
    domain::AccountId,
    metrics::ClickStreamDropped,
};

/// Events queued for one connection before its reader counts as too slow.
pub const STREAM_QUEUE: usize = 1024;
/// Comment sent on a quiet stream, so proxies and clients keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct StreamParams {
    code: Option<String>,
    token: Option<String>,
}

pub async fn token(Caller { account, state }: Caller) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = state.live.key(&state.store).await?;
    let expires = Utc::now().timestamp() + TOKEN_TTL_SECS;
    let expires_at = Utc
        .timestamp_opt(expires, 0)
        .single()
        .ok_or_else(|| ApiError::internal("stream token expiry out of range"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": issue_token(&key, account, expires_at),
            "expires_at": timestamp(expires_at),
        })),
    ))
}

/// The account a stream is for: the stream token when one is given, else the API key.
async fn account(
    state: &SharedState,
    parts: &mut Parts,
    token: Option<&str>,
) -> ApiResult<AccountId> {
    let Some(token) = token else {
        return Ok(Caller::from_request_parts(parts, state).await?.account);
    };
    let client = state.limits.client(parts);
    state.limits.gate(client, Instant::now())?;
    let key = state.live.key(&state.store).await?;
    let Some(account) = verify_token(&key, token, Utc::now()) else {
        let refused = ApiError::unauthorized("invalid or expired stream token");
        return Err(state.limits.failed(client, refused, Instant::now()));
    };
    state.limits.account(account, false)?;
    Ok(account)
}

pub async fn stream(
    State(state): State<SharedState>,
    Query(params): Query<StreamParams>,
    mut parts: Parts,
) -> ApiResult<Response> {
    let account = account(&state, &mut parts, params.token.as_deref()).await?;
    if let Some(code) = &params.code {
        owned_link(&state, account, code).await?;
    }
    let slot = state.live.open(account).ok_or_else(|| {
        let mut e = ApiError::rate_limited(Duration::from_secs(1));
        e.message = format!(
            "at most {} click streams may be open per account",
            crate::clicks::live::MAX_STREAMS_PER_ACCOUNT
        );
        e
    })?;
    let (queue, events) = mpsc::channel(STREAM_QUEUE);
    let dropped = Arc::new(AtomicBool::new(false));
    let forwarder = Forwarder {
        slot,
        account,
        code: params.code,
        queue,
        dropped: dropped.clone(),
        keep_alive: keep_alive(state.config.server.idle_timeout),
    };
    tokio::spawn(forwarder.run(state.live.closed()));
    let body = futures::stream::unfold((events, dropped), |(mut events, dropped)| async move {
        match events.recv().await {
            Some(frame) => Some((Ok::<_, Infallible>(frame), (events, dropped))),
            // The forwarder ended: tell a dropped reader why, once.
            None if dropped.swap(false, Ordering::AcqRel) => {
                let frame = Bytes::from_static(b"event: dropped\ndata: {}\n\n");
                Some((Ok(frame), (events, dropped)))
            }
            None => None,
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Every 15 s, or more often when `server.idle_timeout` would cut a quiet stream first.
fn keep_alive(idle_timeout: Duration) -> Duration {
    KEEP_ALIVE
        .min(idle_timeout / 2)
        .max(Duration::from_millis(100))
}

struct Forwarder {
    slot: StreamSlot,
    account: AccountId,
    code: Option<String>,
    queue: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicBool>,
    keep_alive: Duration,
}

impl Forwarder {
    /// Runs until the reader leaves, falls behind, or the server shuts down.
    async fn run(mut self, closed: impl std::future::Future<Output = ()>) {
        tokio::pin!(closed);
        let mut tick = tokio::time::interval(self.keep_alive);
        tick.reset();
        loop {
            let overflowed = tokio::select! {
                batch = self.slot.clicks.recv() => match batch {
                    Ok(batch) => !self.forward(&batch),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    // A full queue already has data for the reader.
                    let _ = self.queue.try_send(Bytes::from_static(b": keep-alive\n\n"));
                    false
                }
                () = self.queue.closed() => return,
                () = &mut closed => return,
            };
            if overflowed {
                self.dropped.store(true, Ordering::Release);
                ClickStreamDropped {
                    account: self.account,
                }
                .emit();
                return;
            }
        }
    }

    /// Queues the batch's clicks for this stream; `false` when the queue is full.
    fn forward(&self, batch: &LiveBatch) -> bool {
        let mine = batch.iter().filter(|live| {
            live.account == self.account
                && self
                    .code
                    .as_ref()
                    .is_none_or(|code| *code == live.click.code)
        });
        for live in mine {
            let mut data = click_json(&live.click);
            data["code"] = json!(live.click.code);
            let frame = format!("event: click\nid: {}\ndata: {data}\n\n", live.click.id);
            if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(frame.into()) {
                return false;
            }
        }
        true
    }
}
