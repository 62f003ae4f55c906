//! Answers, in the error envelope of every endpoint (see [`crate::error`]), for paths and methods
//! the client API does not serve.

use axum::{
    Json,
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// `404` for a path no endpoint serves.
pub async fn not_found(uri: Uri) -> Response {
    let body = json!({"error": {
        "message": format!("No endpoint at {}", uri.path()),
        "type": "not_found_error", "code": 404, "param": null,
        "metadata": {"error_code": "unknown_endpoint"}
    }});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// `405` for a method an endpoint does not take.
pub async fn method_not_allowed() -> Response {
    let body = json!({"error": {
        "message": "Method not allowed on this endpoint",
        "type": "invalid_request_error", "code": 405, "param": null,
        "metadata": {"error_code": "method_not_allowed"}
    }});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
