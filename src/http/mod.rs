//! The HTTP front: one hyper server; `GET|HEAD /{code}` goes straight to the
//! redirect handler, everything else through the axum router.
//!
//! - [`redirect`]: the hot path.
//! - [`links`], [`accounts`]: the `/v1` API; [`auth`]: bearer tokens.
//! - [`ops`]: health, readiness, metrics. [`error`]: the JSON error shape.
//! - [`limits`]: idle connections, head and body sizes, body deadline;
//!   [`rate_limits`]: requests per account and per client address.
//! - [`keys`]: the account's API keys.
//! - [`openapi`]: the OpenAPI document of all of it.
//! - [`json`]: page parameters, listings and timestamps the `/v1` handlers share.
//! - [`ui`]: the web dashboard at `/ui/` (embedded files; `ui` is a reserved code).

pub mod accounts;
pub mod auth;
pub mod clicks;
pub mod error;
pub mod filter;
pub mod fraud;
pub mod json;
pub mod keys;
pub mod limits;
pub mod links;
pub mod openapi;
pub mod ops;
pub mod rate_limits;
pub mod recover;
pub mod redirect;
pub mod stats;
pub mod stream;
pub mod ui;
pub mod webhooks;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{FromRequest, MatchedPath, Request},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

use crate::{
    clicks::ClickRouter,
    config::Config,
    fraud::FraudHandle,
    link_cache::LinkCache,
    metrics::{
        RedirectMetrics,
        events::{AcceptFailed, ConnectionRefused},
    },
    store::SharedStore,
    webhooks::{Fanout, WebhookDirectory, supervisor::SupervisorMsg},
};
use error::ApiError;
use ractor::ActorRef;

/// Everything a handler may touch.
pub struct AppState {
    pub config: Config,
    pub store: SharedStore,
    pub cache: Arc<LinkCache>,
    pub clicks: ClickRouter,
    pub fanout: Fanout,
    pub directory: Arc<WebhookDirectory>,
    pub webhooks: ActorRef<SupervisorMsg>,
    /// Endpoint creation takes turns (the per-account limit is counted).
    pub endpoint_creation: tokio::sync::Mutex<()>,
    /// Every API write is noted here, so other cluster nodes follow.
    pub changes: crate::cluster::runtime::ChangeLog,
    pub fraud: Option<FraudHandle>,
    pub prometheus: PrometheusHandle,
    pub admin_token_hash: [u8; 32],
    pub redirect_metrics: RedirectMetrics,
    pub limits: rate_limits::Limits,
    pub keys: keys::KeyState,
    pub live: Arc<crate::clicks::live::LiveClicks>,
}

pub type SharedState = Arc<AppState>;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/accounts", post(accounts::create))
        .route("/v1/links", post(links::create).get(links::list))
        .route(
            "/v1/links/{code}",
            get(links::read).patch(links::update).delete(links::delete),
        )
        .route("/v1/links/{code}/clicks", get(clicks::list))
        .route("/v1/links/{code}/stats", get(stats::link))
        .route("/v1/stats", get(stats::account))
        .route("/v1/fraud/incidents", get(fraud::incidents))
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::read)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/v1/webhooks/{id}/test", post(webhooks::send_test))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{event_id}/retry",
            post(webhooks::retry),
        )
        .merge(ui::routes())
        .route("/v1/webhooks/{id}/recover", post(recover::recover))
        .route("/v1/clicks/stream-token", post(stream::token))
        .route("/v1/clicks/stream", get(stream::stream))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::bounded_body,
        ))
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()))
        .unwrap_or("unmatched");
    let response = next.run(request).await;
    crate::metrics::http_request(route, response.status().as_u16());
    response
}

/// Route templates as static labels (a fixed set, never raw paths).
fn route_label(template: &str) -> &'static str {
    match template {
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/v1/openapi.json" => "/v1/openapi.json",
        "/v1/accounts" => "/v1/accounts",
        "/v1/links" => "/v1/links",
        "/v1/links/{code}" => "/v1/links/{code}",
        "/v1/links/{code}/clicks" => "/v1/links/{code}/clicks",
        "/v1/links/{code}/stats" => "/v1/links/{code}/stats",
        "/v1/stats" => "/v1/stats",
        "/v1/fraud/incidents" => "/v1/fraud/incidents",
        "/v1/keys" => "/v1/keys",
        "/v1/keys/{id}" => "/v1/keys/{id}",
        "/v1/webhooks" => "/v1/webhooks",
        "/v1/webhooks/{id}" => "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/rotate-secret" => "/v1/webhooks/{id}/rotate-secret",
        "/v1/webhooks/{id}/test" => "/v1/webhooks/{id}/test",
        "/v1/webhooks/{id}/deliveries" => "/v1/webhooks/{id}/deliveries",
        "/v1/webhooks/{id}/deliveries/{event_id}/retry" => {
            "/v1/webhooks/{id}/deliveries/{event_id}/retry"
        }
        "/ui" | "/ui/" | "/ui/{*asset}" => "/ui",
        "/v1/webhooks/{id}/recover" => "/v1/webhooks/{id}/recover",
        "/v1/clicks/stream-token" => "/v1/clicks/stream-token",
        "/v1/clicks/stream" => "/v1/clicks/stream",
        _ => "other",
    }
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests
/// finish (up to `grace`) before returning. At `server.max_connections` open
/// connections a new one is accepted and closed at once (counted), so the
/// listener's backlog never fills with clients we will not serve.
pub async fn serve(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let limits = &state.config.server;
    if limits.trusted_proxies.is_empty() {
        tracing::warn!(
            "server.trusted_proxies is empty: X-Forwarded-For is ignored and clicks behind a proxy or load balancer all count as its address"
        );
    }
    let router = router(state.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper silently ignores its header timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits::hyper_buffer(limits.max_header_bytes));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let idle_timeout = limits.idle_timeout;
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    AcceptFailed { error: &e }.emit();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            ConnectionRefused { peer }.emit();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            dispatch(state.clone(), router.clone(), request, peer)
        });
        let io = TokioIo::new(limits::IdleIo::new(stream, idle_timeout));
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    // Click streams never end by themselves.
    state.live.close();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

async fn dispatch(
    state: SharedState,
    router: Router,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response, Infallible> {
    // hyper answers heads past its buffer itself; the rest get the JSON shape here.
    if let Err(e) = limits::check_head(&request, state.config.server.max_header_bytes) {
        return Ok(e.into_response());
    }
    if let Some(code) = redirect::redirect_code(request.uri().path()) {
        let method = request.method();
        if method == http::Method::GET || method == http::Method::HEAD {
            return Ok(redirect::handle(&state, &code, &request, peer).await);
        }
        let mut response = ApiError::method_not_allowed().into_response();
        response.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return Ok(response);
    }
    let mut request = request.map(Body::new);
    // The rate limits key unauthenticated callers by address.
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    router.oneshot(request).await
}

/// A JSON body: size-limited (413, by the router's layer), parsed (400 for
/// bad JSON), typed (422 naming the field that did not fit).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &SharedState) -> Result<Self, ApiError> {
        // The router's `limits::bounded_body` already read the body within its size and time.
        let bytes = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Err(ApiError::malformed(format!("could not read body: {e}"))),
        };
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a broken document is a 400 and a well-formed wrong one a 422.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::malformed("body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(unknown) = unknown_field(&inner) {
            return ApiError::validation(&unknown, format!("unknown field {unknown:?}"));
        }
        if path == "." {
            let field = missing_field(&inner).unwrap_or_default();
            return ApiError::validation(&field, inner);
        }
        ApiError::validation(&path, format!("{path}: {inner}"))
    })
}

fn quoted_after(message: &str, marker: &str) -> Option<String> {
    let rest = message.split_once(marker)?.1;
    let rest = rest.trim_start().strip_prefix('`')?;
    Some(rest.split('`').next()?.to_string())
}

fn unknown_field(message: &str) -> Option<String> {
    quoted_after(message, "unknown field")
}

fn missing_field(message: &str) -> Option<String> {
    quoted_after(message, "missing field")
}
