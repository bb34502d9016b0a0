//! The hot path: `GET|HEAD /{code}`. A cache lookup, the answer, and a
//! non-blocking hand-off of the raw click to its shard; nothing else.

use std::{net::SocketAddr, time::Instant};

use axum::{body::Body, response::IntoResponse};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::{AppState, error::ApiError};
use crate::{
    clicks::RawClick,
    domain::{RESERVED_CODES, destination_with_query, is_code_shaped},
    link_cache::Lookup,
    metrics::events::{StoreFailed, StoreOp},
};

const CACHE_CONTROL_VALUE: HeaderValue = HeaderValue::from_static("private, max-age=0");

/// The code when this request is a redirect (`GET|HEAD /{code}`, not a reserved word).
pub fn redirect_code<B>(request: &Request<B>) -> Option<&str> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    let code = request.uri().path().strip_prefix('/')?;
    (is_code_shaped(code) && !RESERVED_CODES.contains(&code)).then_some(code)
}

pub async fn handle<B>(
    state: &AppState,
    code: &str,
    request: Request<B>,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let metrics = &state.redirect_metrics;
    let response = match state.cache.lookup_at(code, started).await {
        Ok(Lookup::Found(link)) => {
            let now = chrono::Utc::now();
            if link.is_gone(now.timestamp_millis()) {
                ApiError::gone("this link is disabled or expired").into_response()
            } else {
                let location = match request.uri().query() {
                    None | Some("") => link.location.clone(),
                    Some(query) => {
                        HeaderValue::from_str(&destination_with_query(&link.destination, query))
                            .unwrap_or_else(|_| link.location.clone())
                    }
                };
                let mut response = Response::new(Body::empty());
                *response.status_mut() = link.status;
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, location);
                headers.insert(header::CACHE_CONTROL, CACHE_CONTROL_VALUE);
                // Explicit, so HEAD answers say it too and clients need not wait for a close.
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                // HEAD is a probe (previews, checkers), not a visit.
                if request.method() == Method::GET {
                    let h = request.headers();
                    let raw = RawClick {
                        at: now,
                        peer: peer.ip(),
                        user_agent: h.get(header::USER_AGENT).cloned(),
                        referrer: h.get(header::REFERER).cloned(),
                        forwarded_for: h.get("x-forwarded-for").cloned(),
                    };
                    state.clicks.record(link, raw).await;
                }
                response
            }
        }
        Ok(Lookup::NotFound) => ApiError::not_found("link").into_response(),
        Err(e) => {
            StoreFailed::new(StoreOp::GetLink, &e).code(code).emit();
            ApiError::unavailable("the store is unavailable, try again").into_response()
        }
    };
    let status = response.status();
    metrics.response(status.as_u16()).increment(1);
    metrics.latency.record(started.elapsed().as_secs_f64());
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return with_no_store(response);
    }
    response
}

fn with_no_store(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, CACHE_CONTROL_VALUE);
    response
}
