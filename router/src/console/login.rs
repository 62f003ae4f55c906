//! Signing in and out. With an admin token configured, the login page asks for it once and
//! answers with the session cookie ([`super::session`]); without one, it explains that only
//! loopback callers (or, when trusted, an authenticating proxy's users) get in. Both forms carry
//! the CSRF token ([`super::csrf`]).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension, Form,
    extract::{ConnectInfo, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    csrf,
    layout::{self, Nav},
    session,
};
use crate::state::AppState;

/// Where the login page sends the browser after signing in: a console path, else the overview
/// (never another site).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/console/",
    }
}

/// The login page's URL, coming back to `next` afterwards.
pub fn login_url(next: Option<&str>) -> String {
    let next = safe_next(next);
    let mut encoded = String::new();
    for b in next.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/console/login?next={encoded}")
}

/// The login page's query.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `GET /console/login`: the form, or (already admitted) straight on to the console.
pub async fn page(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let auth = &state.settings.admin;
    let next = safe_next(q.next.as_deref()).to_string();
    if auth
        .authenticate(&headers, peer.map(|Extension(c)| c.0))
        .is_ok()
    {
        return Redirect::to(&next).into_response();
    }
    layout::respond(&headers, |token| form(&state, token, &next, None))
}

fn form(state: &AppState, csrf_token: &str, next: &str, error: Option<&str>) -> Markup {
    let auth = &state.settings.admin;
    let body = html! {
        section.login {
            h1 { "Sign in to Switchboard" }
            @if auth.has_token() {
                p { "Enter the router's admin token (the Secret named in the Helm release's notes, or "
                    code { "--admin-token-file" } "). You stay signed in for 12 hours." }
                @if let Some(e) = error { p.error role="alert" data-testid="login-error" { (e) } }
                form method="post" action="/console/login" {
                    input type="hidden" name=(csrf::FIELD) value=(csrf_token);
                    input type="hidden" name="next" value=(next);
                    label { "Admin token "
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    }
                    button type="submit" { "Sign in" }
                }
            } @else {
                p data-testid="loopback-only" {
                    "No admin token is configured on this router, so the console answers only on its "
                    "own machine (loopback). Open it from there, or set " code { "--admin-token-file" }
                    " (the Helm chart does) to sign in from elsewhere."
                }
            }
        }
    };
    layout::page(Nav::Login, None, csrf_token, body)
}

/// `POST /console/login`: checks the CSRF token and the admin token, then sets the session
/// cookie and goes on to `next`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Some(refused) = refuse_forgery(&headers, &f.csrf) {
        return refused;
    }
    let next = safe_next(f.next.as_deref()).to_string();
    let auth = &state.settings.admin;
    let Some(key) = auth.session_key().filter(|_| auth.is_token(f.token.trim())) else {
        let mut resp = layout::respond(&headers, |token| {
            form(&state, token, &next, Some("That is not the admin token."))
        });
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    };
    let expires = jiff::Timestamp::now().as_second()
        + i64::try_from(session::LIFETIME.as_secs()).unwrap_or(i64::MAX);
    let cookie = session::set_cookie(
        session::COOKIE,
        &key.issue(expires),
        session::LIFETIME,
        session::over_tls(&headers),
    );
    tracing::info!("console: signed in with the admin token");
    with_cookie(Redirect::to(&next).into_response(), &cookie)
}

/// `POST /console/logout`: clears the session cookie.
pub async fn logout(headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let Some(refused) = refuse_forgery(&headers, &f.csrf) {
        return refused;
    }
    let cookie = session::set_cookie(
        session::COOKIE,
        "",
        std::time::Duration::ZERO,
        session::over_tls(&headers),
    );
    with_cookie(Redirect::to("/console/login").into_response(), &cookie)
}

/// A 403 when a write's CSRF token is not the cookie's or it comes from another origin.
pub fn refuse_forgery(headers: &HeaderMap, presented: &str) -> Option<Response> {
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let ok = csrf::matches(session::cookie(headers, csrf::COOKIE), Some(presented))
        && csrf::same_origin(header_str(header::ORIGIN), header_str(header::HOST));
    (!ok).then(|| {
        (
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or stale: reload the page and try again.",
        )
            .into_response()
    })
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_the_browser_goes_only_to_a_console_page() {
        assert_eq!(safe_next(Some("/console/keys")), "/console/keys");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/metrics",
            "/console\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/");
        assert_eq!(
            login_url(Some("/console/requests?model=a b&x=1")),
            "/console/login?next=/console/requests%3Fmodel%3Da%20b%26x%3D1"
        );
    }
}
