//! The `switchboard-router` binary as users run it: configured by flags or `SWITCHBOARD_*`
//! environment variables, refusing bad manifests loudly, and draining in-flight streams on SIGTERM.

mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use support::{CLIENT_KEY, RouterProcess, manifests, temp_manifest};

/// Manifests whose mock streams `chunks` chunks `delay_ms` apart.
fn slow_mock_manifests(chunks: usize, delay_ms: u64) -> String {
    manifests(&[]).replace(
        "  type: mock\n",
        &format!(
            "  type: mock\n  mock: {{reply: \"{}\", chunkChars: 1, chunkDelay: {delay_ms}ms}}\n",
            "x".repeat(chunks)
        ),
    )
}

async fn start_stream(api: &str) -> reqwest::Response {
    let resp = support::http()
        .post(format!("{api}/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&serde_json::json!({
            "model": "test/mock", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_stream_finish_and_then_exits() {
    // 20 chunks, 50 ms apart: about a second of streaming.
    let mut router = RouterProcess::spawn_with_env(&slow_mock_manifests(20, 50), &[]).await;
    let resp = start_stream(&router.api).await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));

    router.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted while the stream drains.
    let refused = support::http()
        .get(format!("{}/v1/models", router.api))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "listener still accepting after SIGTERM");

    let mut rest = Vec::from(first.as_ref());
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.expect("the stream must not be cut"));
    }
    let text = String::from_utf8(rest).unwrap();
    assert_eq!(
        text.matches(r#""content":"x""#).count(),
        20,
        "every chunk arrived"
    );
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "stream completed: {text}"
    );
    let status = router.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drain_timeout_bounds_shutdown() {
    // A 10 s stream, but only 500 ms to drain.
    let mut router = RouterProcess::spawn_with_env(
        &slow_mock_manifests(100, 100),
        &[("SWITCHBOARD_DRAIN_TIMEOUT", "500ms")],
    )
    .await;
    let resp = start_stream(&router.api).await;
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    let sent = Instant::now();
    router.sigterm();
    let status = router.wait_exit(Duration::from_secs(5)).await;
    assert!(status.success());
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "took {:?}",
        sent.elapsed()
    );
}

#[test]
fn an_invalid_manifest_is_refused_with_the_document_named() {
    let path = temp_manifest(
        "apiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec: {type: mock, models: []}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {name: q}\nspec: {type: nonsense}\n",
    );
    // Its own state directory: the default one (under $HOME) is shared by every router run.
    let state_dir = path.with_extension("state");
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-router"))
        .env("SWITCHBOARD_STATE_DIR", &state_dir)
        .args([
            "--manifests",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&state_dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("document 2"), "{stderr}");
    assert!(stderr.contains("nonsense"), "{stderr}");
}

#[test]
fn flags_are_documented_with_their_environment_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-router"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--manifests",
        "--listen",
        "--admin-listen",
        "--drain-timeout",
        "--max-request-bytes",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    for var in [
        "SWITCHBOARD_MANIFESTS",
        "SWITCHBOARD_LISTEN",
        "SWITCHBOARD_ADMIN_LISTEN",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
    assert!(help.contains("127.0.0.1:8080") && help.contains("127.0.0.1:9090"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_credential_can_come_from_the_environment() {
    let up = support::MockUpstream::start(support::Behaviour::Json(
        200,
        support::UPSTREAM_COMPLETION.into(),
    ))
    .await;
    let manifest = manifests(&[up.base_url()]).replace(
        "credentials: {secretRef: {name: upstream, key: key}}\n  timeouts",
        "credentials: {env: TEST_UPSTREAM_KEY}\n  timeouts",
    );
    assert!(manifest.contains("env: TEST_UPSTREAM_KEY"));
    let router =
        RouterProcess::spawn_with_env(&manifest, &[("TEST_UPSTREAM_KEY", support::UPSTREAM_KEY)])
            .await;
    let resp = support::http()
        .post(format!("{}/v1/chat/completions", router.api))
        .bearer_auth(CLIENT_KEY)
        .json(&serde_json::json!({"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.received()[0].headers["authorization"],
        format!("Bearer {}", support::UPSTREAM_KEY).as_str()
    );
}
