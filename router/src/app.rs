//! The two HTTP surfaces: [`app`] for clients and [`admin_app`] for operators of the router.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use crate::{
    endpoints,
    error::ApiError,
    state::{AppState, RECORDS_WAIT},
};

/// The client API: OpenAI-compatible endpoints under `/v1` and, for OpenRouter-style base URLs,
/// `/api/v1`.
pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/chat/completions", post(endpoints::chat::handle))
        .route("/embeddings", post(endpoints::embeddings::handle))
        .route("/messages", post(endpoints::messages::handle))
        .route("/models", get(endpoints::models::handle))
        .route("/generation", get(endpoints::generation::handle))
        .route("/key", get(endpoints::key::handle));
    Router::new()
        .nest("/v1", api.clone())
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let body = json!({"error": {
        "message": format!("No endpoint at {}", uri.path()),
        "type": "not_found_error", "code": "unknown_endpoint", "param": null
    }});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn method_not_allowed() -> Response {
    let body = json!({"error": {
        "message": "Method not allowed on this endpoint",
        "type": "invalid_request_error", "code": "method_not_allowed", "param": null
    }});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// The admin API: `/healthz`, `/readyz`, `/metrics`, `/config` (secrets redacted), `/loglevel`.
pub fn admin_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/config", get(config))
        .route("/loglevel", get(get_log_level).put(set_log_level))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
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

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.records_written(RECORDS_WAIT).await;
    (
        [(
            header::CONTENT_TYPE,
            switchboard_telemetry::metrics::CONTENT_TYPE,
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn config(State(state): State<Arc<AppState>>) -> Response {
    match state.runtime() {
        Some(rt) => Json(json!({
            "version": rt.config.version,
            "hash": rt.config.hash,
            "objects": rt.objects,
            "snapshot": rt.config.redacted(),
        }))
        .into_response(),
        None => ApiError::NoEligibleProvider("no config loaded".into()).into_response(),
    }
}

async fn get_log_level(State(state): State<Arc<AppState>>) -> Response {
    match state.log_level.get() {
        Some(l) => (StatusCode::OK, format!("{}\n", l.get())).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no live log filter in this process\n",
        )
            .into_response(),
    }
}

/// `PUT /loglevel` with a tracing filter as the body (`debug`, `info,switchboard=debug`).
async fn set_log_level(State(state): State<Arc<AppState>>, body: String) -> Response {
    match state.log_level.get() {
        Some(l) => match l.set(body.trim()) {
            Ok(()) => (StatusCode::OK, format!("{}\n", l.get())).into_response(),
            Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
        None => (
            StatusCode::NOT_FOUND,
            "no live log filter in this process\n",
        )
            .into_response(),
    }
}
