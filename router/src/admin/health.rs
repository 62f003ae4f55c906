//! `/healthz` (the process answers) and `/readyz` (it serves a valid config).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: ready only with a valid config snapshot, whose version and hash it names.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.runtime() {
        Some(rt) => Json(json!({
            "status": "ready",
            "version": rt.config.version,
            "hash": rt.config.hash,
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": "no valid config snapshot loaded"})),
        )
            .into_response(),
    }
}
