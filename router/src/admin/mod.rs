//! The admin listener's pages, on their own port: liveness and readiness, Prometheus metrics, the
//! config being served (secrets redacted), the live log filter, and the usage API
//! (`/admin/v1/usage`, `/admin/v1/generations`). [`require_admin`] ([`auth`]) guards all but the
//! probes and metrics.

pub mod auth;
pub mod config;
pub mod generations;
pub mod health;
pub mod log_level;
pub mod metrics;
pub mod usage;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, state::AppState};

use self::auth::Admin;

/// The middleware in front of every protected admin route. A console session admits reads only
/// here; anything else needs the bearer token (or the proxy, or loopback).
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match state.settings.admin.authenticate(req.headers(), peer) {
        Ok(Admin::Session) if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) => {
            ApiError::AdminCredentialRequired.into_response()
        }
        Ok(admin) => {
            req.extensions_mut().insert(admin);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}
