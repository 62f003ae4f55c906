//! The two HTTP surfaces as route tables: [`app`] for clients and [`admin_app`] for operators of
//! the router. The handlers live in [`crate::ingress`] and [`crate::admin`].

use std::sync::Arc;

use axum::{
    Router, middleware,
    routing::{MethodRouter, any, get, post},
};

use crate::{
    admin, console,
    ingress::{self, fallback},
    panics,
    state::AppState,
};

/// The client API: OpenAI-compatible endpoints under `/v1` and, for OpenRouter-style base URLs,
/// `/api/v1`; Anthropic's Messages API (`/messages`, `/messages/count_tokens`), whose paths answer
/// every error in Anthropic's shape.
pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/chat/completions", post(ingress::chat::handle))
        .route("/completions", post(ingress::completions::handle))
        .route("/embeddings", post(ingress::embeddings::handle))
        .route("/messages", messages(post(ingress::messages::handle)))
        .route(
            "/messages/count_tokens",
            messages(post(ingress::messages::count_tokens::handle)),
        )
        .route("/messages/{*rest}", any(ingress::messages::not_found))
        .route("/responses", post(ingress::responses::create))
        .route(
            "/responses/{id}",
            get(ingress::responses::stored::get).delete(ingress::responses::stored::delete),
        )
        .route(
            "/responses/{id}/input_items",
            get(ingress::responses::stored::input_items),
        )
        .route("/models", get(ingress::models::handle))
        .route("/generation", get(ingress::generation::handle))
        .route("/activity", get(ingress::activity::handle))
        .route("/key", get(ingress::key::handle));
    Router::new()
        .nest("/v1", api.clone())
        .nest("/api/v1", api)
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(axum::middleware::from_fn(panics::catch_panics))
        .with_state(state)
}

/// A `/messages` endpoint: its other methods answered in Anthropic's error shape.
fn messages(route: MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>> {
    route.fallback(ingress::messages::method_not_allowed)
}

/// The admin API: `/healthz`, `/readyz` and `/metrics` open (probes, scrapers; `/metrics` behind
/// the admin token with `--admin-protect-metrics`); `/config` (secrets redacted), `/loglevel`
/// and the usage API `/admin/v1/*` behind [`admin::require_admin`]; the web console at `/` and
/// `/console/` ([`console::routes`], behind the same authentication).
pub fn admin_app(state: Arc<AppState>) -> Router {
    let guard = || middleware::from_fn_with_state(state.clone(), admin::require_admin);
    let protected = Router::new()
        .route("/config", get(admin::config::config))
        .route(
            "/loglevel",
            get(admin::log_level::get_log_level).put(admin::log_level::set_log_level),
        )
        .route("/admin/v1/usage", get(admin::usage::report))
        .route("/admin/v1/generations", get(admin::generations::list))
        .route("/admin/v1/generations/{id}", get(admin::generations::get))
        .route_layer(guard());
    let metrics = Router::new().route("/metrics", get(admin::metrics::metrics));
    let metrics = if state.settings.admin.protect_metrics {
        metrics.route_layer(guard())
    } else {
        metrics
    };
    Router::new()
        .route("/healthz", get(admin::health::healthz))
        .route("/readyz", get(admin::health::readyz))
        .merge(metrics)
        .merge(protected)
        .merge(console::routes(state.clone(), app(state.clone())))
        .layer(axum::middleware::from_fn(panics::catch_panics))
        .with_state(state)
}
