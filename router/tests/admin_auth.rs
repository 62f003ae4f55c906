//! The admin listener's authentication (issue 27): every endpoint that changes or discloses state
//! needs the admin token (401 in the OpenAI error shape without it or with a wrong one), probes
//! and metrics stay open (metrics behind the token when asked), with no token configured only
//! loopback peers are admitted, and neither the token nor its hash reaches a log line. On the
//! client API, `GET /api/v1/activity` shows a client key its own activity and the admin token
//! every key's; without a credential or with a wrong one it answers 401 in the error shape.

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::{body::Body, extract::ConnectInfo};
use sha2::Digest;
use support::{
    CLIENT_KEY, RouterProcess, TestRouter, error_of, get_as, hi, manifests, scratch_dir,
    sqlite_usage,
};
use switchboard_router::{admin::auth::AdminAuth, app::admin_app, state::Settings};
use tower::ServiceExt;

const TOKEN: &str = "sb-admin-Zq8w1Nc4TkLm0Pp9-test";

fn with_token(protect_metrics: bool) -> Settings {
    Settings {
        admin: AdminAuth::new(Some(TOKEN), false, protect_metrics),
        ..Settings::default()
    }
}

/// `(method, path)` of every protected endpoint a router without a log filter serves with 200.
fn protected(generation: &str) -> Vec<(reqwest::Method, String)> {
    vec![
        (reqwest::Method::GET, "/config".into()),
        (reqwest::Method::GET, "/admin/v1/usage".into()),
        (
            reqwest::Method::GET,
            "/admin/v1/usage?format=csv&group_by=day".into(),
        ),
        (reqwest::Method::GET, "/admin/v1/generations".into()),
        (
            reqwest::Method::GET,
            format!("/admin/v1/generations/{generation}"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_endpoints_answer_only_with_the_admin_token() {
    let dir = scratch_dir("admin-token");
    let (router, _state, usage) =
        TestRouter::start_with_usage(&manifests(&[]), with_token(false), sqlite_usage(&dir)).await;
    let resp = router
        .chat(serde_json::json!({"model": "test/mock", "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 200);
    let generation = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    for (method, path) in protected(&generation) {
        let url = router.admin(&path);
        let none = router
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(none.headers()["www-authenticate"], "Bearer", "{path}");
        let (status, body) = error_of(none).await;
        assert_eq!(
            (status, body["error"]["metadata"]["error_code"].as_str()),
            (401, Some("admin_token_required")),
            "{path}"
        );
        let wrong = router
            .http
            .request(method.clone(), &url)
            .bearer_auth(format!("{TOKEN}x"))
            .send()
            .await
            .unwrap();
        let (status, body) = error_of(wrong).await;
        assert_eq!(
            (status, body["error"]["metadata"]["error_code"].as_str()),
            (401, Some("invalid_admin_token")),
            "{path}"
        );
        let ok = router
            .http
            .request(method, &url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{path}");
    }
    // The client API's keys are not admin credentials.
    let key = router
        .http
        .get(router.admin("/config"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 401);
    usage.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_metrics_stay_open_unless_metrics_are_protected() {
    let open = TestRouter::start_with(&manifests(&[]), with_token(false)).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = open.http.get(open.admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let guarded = TestRouter::start_with(&manifests(&[]), with_token(true)).await;
    for path in ["/healthz", "/readyz"] {
        let resp = guarded.http.get(guarded.admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let (status, _) = error_of(
        guarded
            .http
            .get(guarded.admin("/metrics"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let scraped = guarded
        .http
        .get(guarded.admin("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("switchboard_config_version")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_only_loopback_peers_are_admitted() {
    // Over a real socket from 127.0.0.1: the accept loop's peer address reaches the guard.
    let router = TestRouter::start_with(&manifests(&[]), Settings::default()).await;
    let resp = router
        .http
        .get(router.admin("/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The same route as another host reaches it.
    let state = switchboard_router::state_from_manifests(
        &[support::temp_manifest(&manifests(&[]))],
        Settings::default(),
    )
    .unwrap();
    for (peer, want) in [
        ("10.1.2.3:40000", 403),
        ("127.0.0.1:40000", 200),
        ("[::1]:40000", 200),
    ] {
        let mut req = http::Request::get("/config").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let resp = admin_app(state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{peer}");
        if want == 403 {
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["metadata"]["error_code"], "admin_loopback_only");
            assert_eq!(v["error"]["type"], "permission_error");
        }
    }
    // Probes answer anyone.
    let mut req = http::Request::get("/readyz").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.1.2.3:40000".parse::<SocketAddr>().unwrap()));
    assert_eq!(admin_app(state).oneshot(req).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_headers_admit_a_signed_in_user() {
    let state = switchboard_router::state_from_manifests(
        &[support::temp_manifest(&manifests(&[]))],
        Settings {
            admin: AdminAuth::new(Some(TOKEN), true, false),
            ..Settings::default()
        },
    )
    .unwrap();
    let remote = ConnectInfo("10.1.2.3:40000".parse::<SocketAddr>().unwrap());
    let mut req = http::Request::get("/config")
        .header("x-auth-request-email", "ops@example.com")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(remote);
    assert_eq!(
        admin_app(state.clone())
            .oneshot(req)
            .await
            .unwrap()
            .status(),
        200
    );
    let mut bare = http::Request::get("/config").body(Body::empty()).unwrap();
    bare.extensions_mut().insert(remote);
    assert_eq!(admin_app(state).oneshot(bare).await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_level_changes_only_through_an_authenticated_call_and_the_token_is_never_logged() {
    let dir = scratch_dir("admin-log");
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let log = dir.join("router.log");
    let router = RouterProcess::spawn(
        &manifests(&[]),
        &[],
        &[
            ("SWITCHBOARD_ADMIN_TOKEN_FILE", token_file.to_str().unwrap()),
            ("SWITCHBOARD_STATE_DIR", dir.to_str().unwrap()),
            ("SWITCHBOARD_LOG_FORMAT", "json"),
        ],
        Some(&log),
    )
    .await;
    let http = support::http();
    let url = format!("{}/loglevel", router.admin);
    let level = || async {
        http.get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(level().await.trim(), "info");
    for auth in [None, Some("wrong-token")] {
        let mut req = http.put(&url).body("trace");
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let (status, _) = error_of(req.send().await.unwrap()).await;
        assert_eq!(status, 401);
        let (status, _) = error_of(http.get(&url).send().await.unwrap()).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        level().await.trim(),
        "info",
        "unauthenticated calls changed nothing"
    );
    let set = http
        .put(&url)
        .bearer_auth(TOKEN)
        .body("trace")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(level().await.trim(), "trace");
    // At trace level, requests with the token, a wrong one and none; then look at every line.
    for auth in [Some(TOKEN), Some("wrong-token"), None] {
        for path in ["/config", "/admin/v1/usage", "/metrics"] {
            let mut req = http.get(format!("{}{path}", router.admin));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap();
        }
    }
    let resp = support::post_chat(
        &http,
        &router.api,
        CLIENT_KEY,
        &serde_json::json!({"model": "test/mock", "messages": hi()}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("admin endpoints require the admin bearer token"),
        "the mode is logged at start"
    );
    let hash = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    for secret in [TOKEN, &hash[..], &TOKEN[..12]] {
        assert!(!text.contains(secret), "a log line carries {secret:?}");
    }
    drop(router);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_start_log_says_when_no_admin_token_is_configured() {
    let dir = scratch_dir("admin-none");
    let log = dir.join("router.log");
    let router = RouterProcess::spawn(
        &manifests(&[]),
        &[],
        &[("SWITCHBOARD_STATE_DIR", dir.to_str().unwrap())],
        Some(&log),
    )
    .await;
    let resp = support::http()
        .get(format!("{}/config", router.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "loopback callers are admitted without a token"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("no admin token configured"), "{text}");
    drop(router);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_activity_api_shows_every_key_to_the_admin_token_only() {
    let dir = scratch_dir("activity-admin");
    let (router, _state, usage) =
        TestRouter::start_with_usage(&manifests(&[]), with_token(false), sqlite_usage(&dir)).await;
    let resp = router
        .chat(serde_json::json!({"model": "test/mock", "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 200);
    let url = router.url("/api/v1/activity");
    let requests = |v: &serde_json::Value| -> i64 {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requests"].as_i64().unwrap())
            .sum()
    };
    // The record reaches the store within the writer's flush interval.
    let mut own = serde_json::Value::Null;
    for _ in 0..100 {
        own = get_as(&router.http, &url, CLIENT_KEY)
            .await
            .json()
            .await
            .unwrap();
        if requests(&own) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(requests(&own), 1, "{own}");

    // No credential, or a wrong one (neither the admin token nor a client key): 401.
    let (status, body) = error_of(router.http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401, "{body}");
    for wrong in [format!("{TOKEN}x"), "sk-sb-not-a-key-0123456789".into()] {
        let (status, body) = error_of(get_as(&router.http, &url, &wrong).await).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["data"].is_null());
    }
    // Another key sees none of it; the admin token sees every key's.
    let other: serde_json::Value = get_as(&router.http, &url, "sk-sb-test-other-0123456789")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(requests(&other), 0, "{other}");
    let admin = get_as(&router.http, &url, TOKEN).await;
    assert_eq!(admin.status(), 200);
    let admin: serde_json::Value = admin.json().await.unwrap();
    assert_eq!(admin["data"], own["data"]);
    // The admin token is not a key of the client API.
    let (status, _) = error_of(
        router
            .http
            .post(router.url("/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"model": "test/mock", "messages": hi()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    usage.shutdown().await;
    router.server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
