//! Operations: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::SharedState;
use crate::error::{Error, Result};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<SharedState>) -> Result<Json<serde_json::Value>> {
    if *state.shutdown.borrow() {
        return Err(Error::new(
            chatnode_protocol::ErrorCode::Unavailable,
            "shutting down",
        ));
    }
    state.store.ping().await.map_err(|_| {
        Error::new(
            chatnode_protocol::ErrorCode::Unavailable,
            "database unreachable",
        )
    })?;
    Ok(Json(
        json!({"status": "ready", "store": state.store.backend()}),
    ))
}

async fn metrics(State(state): State<SharedState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.hub),
    )
        .into_response()
}
