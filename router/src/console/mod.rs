//! The web console on the admin listener (docs/console.md): spend, budgets, keys, requests and
//! providers at a glance, and a playground. Read-only: nothing here writes to the config.
//!
//! Server-rendered ([`maud`] templates, every value escaped) with htmx for partial updates and
//! uPlot for charts, both vendored under `static/vendor/` and embedded in the binary
//! ([`assets`]); no CDN, no external fonts, so it works air-gapped. Every response carries a
//! strict Content-Security-Policy ([`security_headers`]): scripts only from the console's own
//! files, no inline script, no eval.
//!
//! Who may see it is the admin listener's authentication ([`crate::admin::auth`]): the admin
//! token (entered once on the login page, kept as a signed cookie, [`session`]), an
//! authenticating proxy's identity headers when trusted, or, with no token configured, loopback
//! callers only. Writes (login, logout, the playground) carry a CSRF token ([`csrf`]).

pub mod assets;
pub mod csrf;
pub mod forecast;
pub mod format;
pub mod layout;
pub mod login;
pub mod pages;
pub mod queries;
pub mod session;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension, Router,
    extract::{ConnectInfo, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use http::{HeaderValue, StatusCode, header};

use crate::{admin::auth::Admin, error::ApiError, state::AppState};

/// The Content-Security-Policy of every console response: everything from this origin only,
/// scripts only from files (no inline script, no eval), no framing, forms post only here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where the console lives on the admin listener.
pub const BASE: &str = "/console";

/// The console's routes, to merge into the admin listener's: `/` redirects to the overview, the
/// login page and the static files are open, every other page goes through [`require_console`].
/// `client_api` is the client listener's route table, which the playground sends its requests
/// through.
pub fn routes(state: Arc<AppState>, client_api: Router) -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/console/", get(pages::overview::page))
        .route("/console/budgets", get(pages::budgets::page))
        .route("/console/keys", get(pages::keys::page))
        .route("/console/requests", get(pages::requests::page))
        .route("/console/requests/{id}", get(pages::requests::detail))
        .route("/console/providers", get(pages::providers::page))
        .route("/console/playground", get(pages::playground::page))
        .route("/console/playground/chat", post(pages::playground::chat))
        .route("/console/logout", post(login::logout))
        .layer(Extension(pages::playground::ClientApi(client_api)))
        .route_layer(middleware::from_fn_with_state(state, require_console));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/login", get(login::page).post(login::submit))
        .route("/console/static/{*file}", get(assets::serve))
        .merge(pages)
        .layer(middleware::from_fn(security_headers))
}

/// Sends a page request without a credential to the login page (a full page load) or tells
/// htmx to go there (a partial update); other requests get the admin API's error.
pub async fn require_console(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match state.settings.admin.authenticate(req.headers(), peer) {
        Ok(admin) => {
            req.extensions_mut().insert(admin);
            next.run(req).await
        }
        // A wrong bearer token is an API client's mistake, not a browser to send to the login page.
        Err(e @ ApiError::InvalidAdminToken) => e.into_response(),
        Err(_) if req.method() == http::Method::GET => {
            let login = login::login_url(req.uri().path_and_query().map(|p| p.as_str()));
            if req.headers().contains_key("hx-request") {
                let mut resp = StatusCode::UNAUTHORIZED.into_response();
                if let Ok(v) = HeaderValue::from_str(&login) {
                    resp.headers_mut().insert("hx-redirect", v);
                }
                resp
            } else {
                Redirect::to(&login).into_response()
            }
        }
        Err(e) => e.into_response(),
    }
}

/// Adds the console's security headers to every response: the CSP, no framing, no MIME
/// sniffing, no referrer beyond this origin, and no caching of pages (static files set their
/// own `Cache-Control`).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Who is signed in, as the page header says it.
pub fn who(admin: &Admin) -> String {
    match admin {
        Admin::Token => "admin token".into(),
        Admin::Session => "admin (signed in)".into(),
        Admin::Proxy(email) => email.clone(),
        Admin::Loopback => "local (loopback, no admin token)".into(),
    }
}
