//! The web console's HTTP surface (issue 18): pages need a credential (a redirect to the login
//! page, or 401 for htmx), every response carries the CSP and anti-framing headers, the login
//! form checks its CSRF token and the admin token and answers with an HttpOnly, SameSite=Strict
//! session cookie that the whole admin listener accepts, signing out clears it, no token means
//! loopback only, user data renders escaped, and the playground runs the client pipeline.
//! The browser test (tests/tests/console_browser.rs) drives the same pages in chromium.

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::{body::Body, extract::ConnectInfo};
use support::{TestRouter, hi, manifests, scratch_dir, sqlite_usage};
use switchboard_router::{admin::auth::AdminAuth, app::admin_app, state::Settings};
use tower::ServiceExt;

const TOKEN: &str = "sb-admin-console-Zq8w1Nc4TkLm0Pp9";
const HOSTILE: &str = "<script>alert(1)</script>";
const CONSOLE_KEY: &str = "sk-sb-test-console-0123456789";

const PAGES: [&str; 6] = [
    "/console/",
    "/console/budgets",
    "/console/keys",
    "/console/requests",
    "/console/providers",
    "/console/playground",
];

/// The shared test manifests plus a route with a hostile model name, a key that may call it, and
/// a budget over that key.
fn console_manifests() -> String {
    format!(
        r#"{}
---
apiVersion: v1
kind: Secret
metadata: {{name: console-key}}
stringData: {{key: {CONSOLE_KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: console, labels: {{team: "<b>team</b>"}}}}
spec: {{secretRef: {{name: console-key, key: key}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: hostile}}
spec: {{model: "{HOSTILE}", targets: [{{provider: mock, model: mock-chat}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: console-monthly}}
spec: {{limitUSD: "5", window: monthly, scope: {{apiKeys: [console]}}, softLimitPercent: 80}}
"#,
        manifests(&[])
    )
}

fn no_redirects() -> reqwest::Client {
    switchboard_router::providers::clients::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn with_token() -> Settings {
    Settings {
        admin: AdminAuth::new(Some(TOKEN), false, false),
        ..Settings::default()
    }
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{what}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
}

/// The value of cookie `name` set by `resp`, with its attributes.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn urlencoded<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `<input name="csrf" value="…">` in a page.
fn csrf_field(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[at..at + 64].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_need_a_credential_and_the_login_form_makes_a_session_cookie() {
    let dir = scratch_dir("console-login");
    let (router, _state, usage) =
        TestRouter::start_with_usage(&console_manifests(), with_token(), sqlite_usage(&dir)).await;
    let http = no_redirects();

    let root = http.get(router.admin("/")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console/");
    for page in PAGES {
        let resp = http.get(router.admin(page)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{page}");
        assert!(
            resp.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/console/login?next=/console"),
            "{page}"
        );
        assert_security_headers(&resp, page);
        let partial = http
            .get(router.admin(page))
            .header("hx-request", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(partial.status(), 401, "{page}");
        assert!(partial.headers().contains_key("hx-redirect"));
    }
    let refused = http
        .post(router.admin("/console/playground/chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // The static files are open (nothing private) and typed.
    let js = http
        .get(router.admin("/console/static/vendor/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(js.headers()["x-content-type-options"], "nosniff");
    let missing = http
        .get(router.admin("/console/static/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The login page sets the CSRF cookie and writes the same token into its form.
    let login = http
        .get(router.admin("/console/login?next=/console/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_security_headers(&login, "login");
    let csrf_cookie = set_cookie(&login, "sb_csrf").expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    let csrf = cookie_value(&csrf_cookie).to_string();
    let html = login.text().await.unwrap();
    assert_eq!(csrf_field(&html), csrf);
    assert!(html.contains(r#"type="password" name="token""#));

    let post = |form: Vec<(&'static str, String)>, cookie: Option<String>, origin: Option<&str>| {
        let mut req = http
            .post(router.admin("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(&form));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let good_csrf = || Some(format!("sb_csrf={csrf}"));
    // No CSRF cookie, a token that is not the cookie's, another origin: refused before the token
    // is even looked at.
    let form = |token: &str, csrf: &str| {
        vec![
            ("token", token.to_string()),
            ("csrf", csrf.to_string()),
            ("next", "/console/keys".to_string()),
        ]
    };
    assert_eq!(
        post(form(TOKEN, &csrf), None, None).await.unwrap().status(),
        403
    );
    let other = "0".repeat(64);
    assert_eq!(
        post(form(TOKEN, &other), good_csrf(), None)
            .await
            .unwrap()
            .status(),
        403
    );
    let cross = post(form(TOKEN, &csrf), good_csrf(), Some("http://evil.example"))
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    // A wrong admin token: the form again, with a 401 and no session.
    let wrong = post(form("nope", &csrf), good_csrf(), None).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "sb_console").is_none());
    assert!(wrong.text().await.unwrap().contains("not the admin token"));
    // The token: a session cookie, and on to `next`.
    let origin = format!("http://{}", router.server.admin_addr);
    let ok = post(form(TOKEN, &csrf), good_csrf(), Some(&origin))
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/console/keys");
    let session = set_cookie(&ok, "sb_console").expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(session.contains("Max-Age=43200"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    assert!(!session.contains(TOKEN));
    let cookies = format!("sb_console={}; sb_csrf={csrf}", cookie_value(&session));

    // Behind a TLS-terminating proxy the cookie is Secure.
    let tls = http
        .post(router.admin("/console/login"))
        .header("cookie", format!("sb_csrf={csrf}"))
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&form(TOKEN, &csrf)))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&tls, "sb_console").unwrap().contains("; Secure"));

    // The session opens every page, and the rest of the admin listener too.
    for page in PAGES {
        let resp = http
            .get(router.admin(page))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{page}");
        assert_security_headers(&resp, page);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let html = resp.text().await.unwrap();
        assert!(html.contains("admin (signed in)"), "{page}");
        assert!(!html.contains("<script>alert"), "{page}");
    }
    let usage_api = http
        .get(router.admin("/admin/v1/usage"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(usage_api.status(), 200);
    // The login page sends a signed-in browser straight on.
    let again = http
        .get(router.admin("/console/login"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);

    // Signing out clears the cookie (CSRF-checked too).
    let forged = http
        .post(router.admin("/console/logout"))
        .header("cookie", &cookies)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("csrf", other.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let out = http
        .post(router.admin("/console/logout"))
        .header("cookie", &cookies)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let cleared = set_cookie(&out, "sb_console").unwrap();
    assert!(
        cleared.starts_with("sb_console=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // A tampered cookie is no session.
    let tampered = format!("sb_console={}0", cookie_value(&session));
    let resp = http
        .get(router.admin("/console/keys"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    usage.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_only_loopback_callers_see_the_console() {
    let path = support::temp_manifest(&console_manifests());
    let state = switchboard_router::state_from_manifests(&[path], Settings::default()).unwrap();
    let get = |peer: &str, uri: &str| {
        let mut req = http::Request::get(uri).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        admin_app(state.clone()).oneshot(req)
    };
    let local = get("127.0.0.1:5000", "/console/providers").await.unwrap();
    assert_eq!(local.status(), 200);
    let body = axum::body::to_bytes(local.into_body(), 1 << 22)
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("local (loopback, no admin token)"));
    // No sign-out button: there is no session to end.
    assert!(!html.contains("/console/logout"));
    let remote = get("10.1.2.3:5000", "/console/providers").await.unwrap();
    assert_eq!(remote.status(), 303);
    let login = get("10.1.2.3:5000", "/console/login").await.unwrap();
    assert_eq!(login.status(), 200);
    let body = axum::body::to_bytes(login.into_body(), 1 << 22)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("loopback"));
}

#[tokio::test(flavor = "multi_thread")]
async fn user_data_renders_escaped_and_the_playground_runs_the_client_pipeline() {
    let dir = scratch_dir("console-data");
    let (router, state, usage) =
        TestRouter::start_with_usage(&console_manifests(), with_token(), sqlite_usage(&dir)).await;
    let resp = router
        .chat_as(
            CONSOLE_KEY,
            serde_json::json!({"model": HOSTILE, "messages": hi()}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let generation = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = resp.text().await;
    state.records_written(Duration::from_secs(2)).await;
    // The record reaches the store within the writer's batch interval.
    let http = no_redirects();
    let mut listed = String::new();
    for _ in 0..100 {
        listed = http
            .get(router.admin("/console/requests"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if listed.contains(&generation) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed.contains(&generation), "{listed}");
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    for page in [
        "/console/requests".to_string(),
        format!("/console/requests/{generation}"),
        "/console/providers".into(),
        "/console/keys".into(),
        "/console/playground".into(),
        "/console/?range=24h".into(),
        "/console/budgets".into(),
    ] {
        let html = http
            .get(router.admin(&page))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("<script>alert"), "{page}");
        assert!(!html.contains("<b>team"), "{page}");
        if page == "/console/keys" {
            assert!(
                html.contains("&lt;b&gt;team&lt;/b&gt;"),
                "{page} shows the team, escaped"
            );
        } else if page != "/console/budgets" {
            assert!(
                html.contains(escaped),
                "{page} shows the hostile model, escaped"
            );
        }
    }
    // A filter that matches nothing, and one that matches the request.
    let none = http
        .get(router.admin("/console/requests?model=test%2Fmock&status="))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!none.contains(&generation) && none.contains("No requests match."));
    let bad = http
        .get(router.admin("/console/requests?status=ok"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(bad.contains("`status` must be HTTP status codes"));

    // The playground: CSRF-checked, then the client API's pipeline with the pasted key.
    let page = http
        .get(router.admin("/console/playground"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let csrf = cookie_value(&set_cookie(&page, "sb_csrf").unwrap()).to_string();
    let body = serde_json::json!({
        "model": "test/mock",
        "messages": hi(),
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let forged = http
        .post(router.admin("/console/playground/chat"))
        .bearer_auth(TOKEN)
        .header("x-playground-key", support::CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let play = |key: &str| {
        http.post(router.admin("/console/playground/chat"))
            .bearer_auth(TOKEN)
            .header("cookie", format!("sb_csrf={csrf}"))
            .header("x-csrf-token", &csrf)
            .header("x-playground-key", key)
            .json(&body)
            .send()
    };
    let streamed = play(support::CLIENT_KEY).await.unwrap();
    assert_eq!(streamed.status(), 200);
    assert_eq!(streamed.headers()["content-type"], "text/event-stream");
    let played = streamed.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = streamed.text().await.unwrap();
    assert!(
        text.contains("\"usage\"") && text.contains("\"cost\""),
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The key's own rules apply: `other` may not call test/*.
    let denied = play("sk-sb-test-other-0123456789").await.unwrap();
    assert_eq!(denied.status(), 403);
    let unknown = play("sk-sb-not-a-key").await.unwrap();
    assert_eq!(unknown.status(), 401);
    // And it is recorded like any request, as the playground's app.
    state.records_written(Duration::from_secs(2)).await;
    let record = http
        .get(router.admin(&format!("/admin/v1/generations/{played}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(record["data"]["api_key"], "default/main");
    assert_eq!(record["data"]["app"], "Switchboard console playground");
    usage.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
