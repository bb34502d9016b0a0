//! Operator endpoints: liveness, readiness (every click shard running, store
//! reachable), Prometheus text.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::json;

use super::SharedState;
use crate::metrics::events::{StoreFailed, StoreOp};

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    // A down shard still counts its clicks but writes none until it is back.
    let down = state.clicks.shards_down();
    if !down.is_empty() {
        let which: Vec<String> = down.iter().map(usize::to_string).collect();
        let reason = format!("click shards not running: {}", which.join(", "));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        // The driver's text (hosts, addresses) is for the log, not for anyone
        // who can reach the probe.
        Ok(Err(e)) => {
            StoreFailed::new(StoreOp::Ping, &e).emit();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "reason": "store unreachable" })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": "store did not answer within 2s" })),
        ),
    }
}

pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
}
