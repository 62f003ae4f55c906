//! `GET /config`: the config being served, with each object's verdict from the last compile;
//! provider credentials redacted.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{error::ApiError, state::AppState};

/// `GET /config`.
pub async fn config(State(state): State<Arc<AppState>>) -> Response {
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
