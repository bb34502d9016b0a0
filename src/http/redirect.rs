//! The hot path: `GET|HEAD /{code}`. A cache lookup, the answer, and a
//! non-blocking hand-off of the raw click to its shard; nothing else.

use std::{borrow::Cow, net::SocketAddr, time::Instant};

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

/// The code when `path` is a redirect's (`/{code}`, not a reserved word).
/// Percent-encoded unreserved characters are decoded (`/%71x` is `/qx`); any
/// other encoding makes the path not a code.
pub fn redirect_code(path: &str) -> Option<Cow<'_, str>> {
    let code = decode_unreserved(path.strip_prefix('/')?)?;
    (is_code_shaped(&code) && !RESERVED_CODES.contains(&&*code)).then_some(code)
}

fn decode_unreserved(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let value = hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?;
        let c = char::from_u32(value)?;
        if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')) {
            return None;
        }
        out.push(c);
        i += 3;
    }
    Some(Cow::Owned(out))
}

pub async fn handle<B>(
    state: &AppState,
    code: &str,
    request: &Request<B>,
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
                    // Owned, truncated copies: a queued click must not pin the request head.
                    let raw = RawClick::from_headers(now, peer.ip(), request.headers());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoded_unreserved_characters_are_decoded() {
        assert_eq!(redirect_code("/qtest").as_deref(), Some("qtest"));
        assert_eq!(redirect_code("/%71test").as_deref(), Some("qtest"));
        assert_eq!(redirect_code("/%2D%5f").as_deref(), Some("-_"));
        // Not unreserved, not hex, cut short, or a reserved word once decoded.
        for path in [
            "/%2Ftest", "/%20x", "/%zz", "/%7", "/%C3%A9", "/%761", "/%2E",
        ] {
            assert_eq!(redirect_code(path), None, "{path}");
        }
    }
}
