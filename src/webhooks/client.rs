//! Outbound HTTP for deliveries: one pooled hyper-util client over rustls
//! (webpki roots, HTTP/1.1 keep-alive, HTTP/2 by ALPN), redirects not followed,
//! and an address guard inside the connector so DNS rebinding cannot reach a
//! private address after the endpoint was checked.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpStream;

use super::{
    policy::{OutcomeKind, parse_retry_after},
    target::is_forbidden,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What of a response body the attempts log keeps and the API returns; never
/// read past this. Short, so a receiver's answer is a hint for debugging
/// rather than a channel to read back whatever the target URL serves.
pub const RESPONSE_BODY_CAP: usize = 256;

/// Resolves names and drops every forbidden address.
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = super::dns::lookup(&host)
                .await?
                .into_iter()
                .filter(|ip| allow_private || !is_forbidden(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no permitted public address").into());
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Refuses IP-literal URLs pointing at forbidden addresses (the resolver
/// never sees literals), then connects.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    allow_private: bool,
}

impl tower::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = literal.filter(|ip| !self.allow_private && is_forbidden(*ip)) {
            return Box::pin(async move { Err(format!("{ip} is not a public address").into()) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// What one attempt got back.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub kind: OutcomeKind,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub body: Option<String>,
    pub duration: Duration,
}

#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookClient {
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, BoxError> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(
                Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            )?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(GuardedConnector {
                inner: http,
                allow_private,
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(https);
        Ok(Self { client, timeout })
    }

    /// POSTs `body` with `headers`; never longer than the configured timeout.
    pub async fn send(&self, url: &Uri, headers: HeaderMap, body: Bytes) -> AttemptReport {
        let started = Instant::now();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = url.clone();
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .filter(|_| status == 429 || status == 503)
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
            let body = read_capped(response.into_body()).await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body))
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let duration = started.elapsed();
        match result {
            Ok(Ok((status, retry_after, body))) => AttemptReport {
                kind: OutcomeKind::of_status(status),
                status: Some(status),
                error: None,
                retry_after,
                body: Some(body),
                duration,
            },
            Ok(Err(e)) => AttemptReport {
                kind: OutcomeKind::ConnectError,
                status: None,
                error: Some(error_chain(&e)),
                retry_after: None,
                body: None,
                duration,
            },
            Err(_) => AttemptReport {
                kind: OutcomeKind::Timeout,
                status: None,
                error: Some(format!("no answer within {} ms", self.timeout.as_millis())),
                retry_after: None,
                body: None,
                duration,
            },
        }
    }
}

async fn read_capped(mut body: hyper::body::Incoming) -> String {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_BODY_CAP {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = RESPONSE_BODY_CAP - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
