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

#[derive(serde::Deserialize)]
struct ReadyQuery {
    /// Ready for this role: also unready when the node does not run it (a load balancer's
    /// health check per pool: `/readyz?role=gateway` for the WebSocket pool).
    role: Option<String>,
}

async fn readyz(
    State(state): State<SharedState>,
    crate::http::ApiQuery(q): crate::http::ApiQuery<ReadyQuery>,
) -> Result<Json<serde_json::Value>> {
    let roles = state.config.roles;
    if let Some(role) = q.role.as_deref() {
        if !matches!(role, "gateway" | "api" | "push") {
            return Err(Error::invalid(
                "role",
                "the roles are gateway, api and push",
            ));
        }
        if !roles.has(role) {
            return Err(Error::new(
                chatnode_protocol::ErrorCode::Unavailable,
                format!(
                    "this node does not run the {role} role (its roles: {})",
                    roles.names().join(",")
                ),
            ));
        }
    }
    if *state.shutdown.borrow() {
        return Err(Error::new(
            chatnode_protocol::ErrorCode::Unavailable,
            "shutting down",
        ));
    }
    if let Some(problem) = state.batcher.health().problem() {
        return Err(Error::new(
            chatnode_protocol::ErrorCode::Unavailable,
            problem,
        ));
    }
    state.store.ping().await.map_err(|_| {
        Error::new(
            chatnode_protocol::ErrorCode::Unavailable,
            "database unreachable",
        )
    })?;
    let Some(cluster) = &state.cluster else {
        return Ok(Json(json!({
            "status": "ready",
            "store": state.store.backend(),
            "roles": roles.names(),
        })));
    };
    // A node cut off from NATS would serve its own users but nobody else's events: take it
    // out of the load balancer until the connection is back.
    if !cluster.is_connected() {
        return Err(Error::new(
            chatnode_protocol::ErrorCode::Unavailable,
            "message broker (NATS) unreachable",
        ));
    }
    Ok(Json(json!({
        "status": "ready",
        "store": state.store.backend(),
        "broker": "nats",
        "node_id": cluster.node_id(),
        "roles": roles.names(),
    })))
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let mut body = state.metrics.render(&state.hub);
    state.push.render_metrics(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
