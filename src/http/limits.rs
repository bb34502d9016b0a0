//! What a hostile client may hold, said out loud: how long a connection may sit
//! idle ([`IdleIo`]), how large a request head may be ([`check_head`], answered
//! in the JSON error shape) and how large and slow a body may be
//! ([`bounded_body`]). The connection cap and hyper's own timers are set in
//! [`super::serve`].
//!
//! What hyper answers itself, with an empty body, because it never hands us the
//! request: a head larger than [`hyper_buffer`] or with more than 100 header
//! lines (431), a request line it cannot parse (400).

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::HttpBody as _;
use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

use super::{SharedState, error::ApiError};

/// A request target longer than this is 414 (or `max_header_bytes`, if smaller).
pub const MAX_TARGET_BYTES: usize = 8192;

/// A body over the limit is still read (and thrown away) up to this many
/// bytes, so the client gets its 413 instead of a reset connection; a larger
/// declared or sent body is answered at once and the connection closed.
const DRAIN_LIMIT: u64 = 8 << 20;

/// hyper's read buffer: room for every head we answer ourselves (ours is the
/// JSON 414/431), so only heads past this get hyper's bare 431.
pub fn hyper_buffer(max_header_bytes: usize) -> usize {
    max_header_bytes + MAX_TARGET_BYTES + 8192
}

/// 414 for a long target, 431 for a large head; checked before any routing.
pub fn check_head<B>(request: &http::Request<B>, max_header_bytes: usize) -> Result<(), ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    let target_limit = max_header_bytes.min(MAX_TARGET_BYTES);
    if target > target_limit {
        return Err(ApiError::uri_too_long(target_limit));
    }
    // ": " and CRLF per line, as on the wire.
    let lines: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if target + lines > max_header_bytes {
        return Err(ApiError::headers_too_large(format!(
            "request head is larger than {max_header_bytes} bytes"
        )));
    }
    Ok(())
}

/// Reads every API request body before its handler runs: at most
/// `server.max_body_bytes` (413) within `server.body_read_timeout` (408),
/// whatever the route does with it, chunked or not.
pub async fn bounded_body(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let server = &state.config.server;
    let (parts, body) = request.into_parts();
    let declared = body.size_hint().exact();
    match read_body(
        body,
        declared,
        server.max_body_bytes,
        server.body_read_timeout,
    )
    .await
    {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

async fn read_body(
    mut body: Body,
    declared: Option<u64>,
    limit: usize,
    within: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(limit);
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large());
    }
    let deadline = Instant::now() + within;
    let mut kept = BytesMut::new();
    let mut seen: u64 = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                return Err(ApiError::malformed(format!("could not read body: {e}")));
            }
            Err(_) if seen > limit as u64 => return Err(too_large()),
            Err(_) => {
                return Err(ApiError::timeout(format!(
                    "request body did not arrive within {within:?}"
                )));
            }
        };
        // Trailers carry nothing a handler reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > DRAIN_LIMIT {
            return Err(too_large());
        }
        if seen <= limit as u64 {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 {
        return Err(too_large());
    }
    Ok(kept.freeze())
}

/// A connection that fails with `TimedOut` once nothing was read or written
/// for `timeout`: covers a client that never sends its first byte (hyper's
/// header timer starts only once the protocol is known), stops reading its
/// answer, or keeps an HTTP/2 connection open doing nothing.
pub struct IdleIo<T> {
    io: T,
    timeout: Duration,
    last: Instant,
    /// Armed at `last + timeout` when it last fired; re-armed lazily, so
    /// activity costs a clock read, not a timer update.
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        let last = Instant::now();
        Self {
            io,
            timeout,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + timeout)),
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Called when the socket would block: `Ready(Err)` once idle too long.
    fn poll_idle<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last + self.timeout;
            if due <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past server.idle_timeout",
                )));
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, header: usize) -> http::Request<()> {
        http::Request::builder()
            .uri(target)
            .header("x-pad", "a".repeat(header))
            .body(())
            .unwrap()
    }

    #[test]
    fn heads_over_the_limit_are_refused_with_their_status() {
        assert!(check_head(&request("/abc", 100), 2048).is_ok());
        let long = format!("/abc?q={}", "a".repeat(3000));
        assert_eq!(
            check_head(&request(&long, 10), 2048).unwrap_err().status,
            http::StatusCode::URI_TOO_LONG
        );
        assert_eq!(
            check_head(&request("/abc", 3000), 2048).unwrap_err().status,
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn an_idle_connection_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let mut idle = IdleIo::new(server, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        client.write_all(b"x").await.unwrap();
        assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        // Nothing more arrives: the read ends in an error, not a hang.
        let error = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
