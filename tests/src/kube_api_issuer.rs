//! The mock API server's ServiceAccount token issuer: its discovery document and key set, served
//! once [`MockKubeApi::serve_issuer`](super::MockKubeApi::serve_issuer) gives them.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{Shared, status_error};

/// The issuer's discovery document or key set, for their paths; 404 until one is served.
pub(super) fn document(shared: &Shared, path: &str) -> Option<Response> {
    if !matches!(
        path,
        "/.well-known/openid-configuration" | "/openid/v1/jwks"
    ) {
        return None;
    }
    let issuer = shared.inner.lock().unwrap().issuer.clone();
    let Some((issuer, jwks)) = issuer else {
        return Some(status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no issuer is served at {path}"),
        ));
    };
    let body = if path == "/openid/v1/jwks" {
        jwks
    } else {
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    };
    Some(axum::Json(body).into_response())
}
