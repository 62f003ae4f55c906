//! The console's part of the one admin authentication (issue 27): a wrong bearer token on a
//! console page is a 401 in the OpenAI error shape (not a trip to the login page), the right one
//! opens it; a console session reads the rest of the admin listener but cannot change anything
//! there (`PUT /loglevel` needs the bearer token); a trusted proxy's user is named, escaped, in
//! the page header; with no token configured a loopback caller must also address the router by
//! a loopback name, so a page using DNS rebinding gets neither the console nor `/config`.

mod support;

use std::{net::SocketAddr, sync::Arc};

use axum::{body::Body, extract::ConnectInfo};
use support::manifests;
use switchboard_router::{
    admin::auth::AdminAuth,
    app::admin_app,
    console::session,
    state::{AppState, Settings},
};
use tower::ServiceExt;

const TOKEN: &str = "sb-admin-console-auth-7Hd2Qw9xLp4Zr1Vm";

fn state(admin: AdminAuth) -> Arc<AppState> {
    switchboard_router::state_from_manifests(
        &[support::temp_manifest(&manifests(&[]))],
        Settings {
            admin,
            ..Settings::default()
        },
    )
    .unwrap()
}

/// One request through the admin route table, from `peer`, with `headers`.
async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    peer: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::from("debug")).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let resp = admin_app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"]["metadata"]["error_code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const REMOTE: &str = "10.1.2.3:40000";
const LOOPBACK: &str = "127.0.0.1:40000";

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_opens_the_console_and_a_wrong_one_is_refused_in_the_error_shape() {
    let state = state(AdminAuth::new(Some(TOKEN), false, false));
    let good = format!("Bearer {TOKEN}");
    let (status, _, html) = call(
        &state,
        "GET",
        "/console/keys",
        REMOTE,
        &[("authorization", &good)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("admin token"), "{html}");
    for headers in [
        vec![("authorization", "Bearer not-the-token")],
        vec![
            ("authorization", "Bearer not-the-token"),
            ("hx-request", "true"),
        ],
    ] {
        let (status, h, body) = call(&state, "GET", "/console/keys", REMOTE, &headers).await;
        assert_eq!(status, 401, "{body}");
        assert!(!h.contains_key("location"));
        assert_eq!(error_code(&body), "invalid_admin_token");
    }
    // No credential at all: a browser is sent to the login page.
    let (status, h, _) = call(&state, "GET", "/console/keys", REMOTE, &[]).await;
    assert_eq!(status, 303);
    assert!(
        h["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/login")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_session_reads_the_admin_listener_but_changes_nothing_on_it() {
    let state = state(AdminAuth::new(Some(TOKEN), false, false));
    let expires = jiff::Timestamp::now().as_second() + 600;
    let value = state.settings.admin.session_key().unwrap().issue(expires);
    let cookie = format!("{}={value}", session::COOKIE);
    let with_session = [("cookie", cookie.as_str())];
    for uri in ["/config", "/admin/v1/usage", "/console/providers"] {
        let (status, _, body) = call(&state, "GET", uri, REMOTE, &with_session).await;
        assert!(
            status == 200 || (uri == "/admin/v1/usage" && status == 404),
            "{uri}: {status} {body}"
        );
    }
    // Reading the log level gets past the authentication (this process has no live filter:
    // 404); changing it with only the session does not.
    let (status, _, body) = call(&state, "GET", "/loglevel", REMOTE, &with_session).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = call(&state, "PUT", "/loglevel", REMOTE, &with_session).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), "admin_token_required");
    let good = format!("Bearer {TOKEN}");
    let (status, _, body) = call(
        &state,
        "PUT",
        "/loglevel",
        REMOTE,
        &[("authorization", &good)],
    )
    .await;
    assert_eq!(status, 404, "the bearer token gets through: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_user_is_named_escaped_in_the_console() {
    let state = state(AdminAuth::new(Some(TOKEN), true, false));
    let email = "<script>alert(1)</script>@example.com";
    for header in ["x-auth-request-email", "x-forwarded-email"] {
        let (status, _, html) = call(
            &state,
            "GET",
            "/console/budgets",
            REMOTE,
            &[(header, email)],
        )
        .await;
        assert_eq!(status, 200, "{header}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        // No session to end: the proxy signs the user out.
        assert!(!html.contains("/console/logout"));
    }
    // Untrusted, the same header is nothing.
    let untrusted = self::state(AdminAuth::new(Some(TOKEN), false, false));
    let (status, _, _) = call(
        &untrusted,
        "GET",
        "/console/budgets",
        REMOTE,
        &[("x-auth-request-email", "ops@example.com")],
    )
    .await;
    assert_eq!(status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_a_rebinding_host_gets_neither_the_console_nor_the_config() {
    let state = state(AdminAuth::default());
    for host in ["localhost:9090", "127.0.0.1:9090", "[::1]:9090"] {
        let (status, _, _) = call(
            &state,
            "GET",
            "/console/providers",
            LOOPBACK,
            &[("host", host)],
        )
        .await;
        assert_eq!(status, 200, "{host}");
        let (status, _, _) = call(&state, "GET", "/config", LOOPBACK, &[("host", host)]).await;
        assert_eq!(status, 200, "{host}");
    }
    // A page from attacker.example whose name now resolves to 127.0.0.1: same peer, its own Host.
    let rebound = [("host", "attacker.example:9090")];
    let (status, _, body) = call(&state, "GET", "/config", LOOPBACK, &rebound).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "admin_host_not_loopback");
    assert!(!body.contains("mock-chat"));
    let (status, h, _) = call(&state, "GET", "/console/providers", LOOPBACK, &rebound).await;
    assert_eq!(status, 303);
    assert!(
        h["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/login")
    );
    let (status, _, body) = call(
        &state,
        "POST",
        "/console/playground/chat",
        LOOPBACK,
        &rebound,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // The probes stay open to anyone.
    let (status, _, _) = call(&state, "GET", "/healthz", LOOPBACK, &rebound).await;
    assert_eq!(status, 200);
}
