//! The binary at the edges of its life (issue 16, findings 4b and 4c): a stream still open at
//! the drain timeout ends with a usage chunk and an error chunk, is settled for what was relayed
//! (the spend survives in the state file) and gets its access-log line and usage record; a SIGHUP with an empty or
//! truncated manifest is refused like a broken one, and a refused reload does not use up a
//! version number.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::{CLIENT_KEY, RouterProcess, get_text, http, key_info, manifests};

/// Manifests whose mock streams `chunks` one-character chunks `delay_ms` apart.
fn slow_mock_manifests(chunks: usize, delay_ms: u64) -> String {
    manifests(&[]).replace(
        "  type: mock\n",
        &format!(
            "  type: mock\n  mock: {{reply: \"{}\", chunkChars: 1, chunkDelay: {delay_ms}ms}}\n",
            "x".repeat(chunks)
        ),
    )
}

fn hup(router: &RouterProcess) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &router.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// #16.4b: a stream cut at the drain timeout was never settled nor logged.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_at_the_drain_timeout_ends_with_an_error_chunk_is_settled_and_logged() {
    let dir = std::env::temp_dir().join(format!("sb-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (state, log) = (dir.join("state.json"), dir.join("router.log"));
    let _ = std::fs::remove_file(&state);
    let usage_db = dir.join("usage.db");
    let _ = std::fs::remove_file(&usage_db);
    let usage_store = format!("sqlite://{}", usage_db.display());
    let manifest = slow_mock_manifests(200, 50);
    let args = [
        "--drain-timeout",
        "500ms",
        "--state-file",
        state.to_str().unwrap(),
        "--usage-store",
        &usage_store,
    ];
    let mut router = RouterProcess::spawn(&manifest, &args, &[], Some(&log)).await;
    let resp = http()
        .post(format!("{}/v1/chat/completions", router.api))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "test/mock", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    router.sigterm();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("the stream ends cleanly")).unwrap());
    }
    assert!(router.wait_exit(Duration::from_secs(10)).await.success());
    let payloads: Vec<Value> = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let n = payloads.len();
    assert!(!text.contains("[DONE]"), "{text}");
    let (usage, error) = (&payloads[n - 2], &payloads[n - 1]);
    assert_eq!(usage["choices"], json!([]), "{text}");
    assert_eq!(error["error"]["code"], 503, "{text}");
    assert_eq!(
        error["error"]["metadata"]["error_code"], "server_shutting_down",
        "{text}"
    );
    assert_eq!(error["choices"][0]["finish_reason"], "error");
    let relayed = text.matches(r#""content":"x""#).count() as u64;
    assert!(relayed > 0 && relayed < 200, "{relayed}");
    // Billed for what was relayed: the prompt's estimate (its 32 characters of JSON, 8 tokens)
    // at $1/M, ⌈relayed/4⌉ output tokens at $2/M.
    let cost = usage["usage"]["cost"].as_f64().unwrap();
    let expected = (8 + 2 * relayed.div_ceil(4)) as f64 / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    let logs = std::fs::read_to_string(&log).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("outcome=\"drain_cut\"") || l.contains("outcome=drain_cut"))
        .unwrap_or_else(|| panic!("no access line for the cut stream:\n{logs}"));
    assert!(line.contains("test/mock"), "{line}");
    // The settlement reached the state file before the process exited.
    let router = RouterProcess::spawn(
        &manifest,
        &[
            "--state-file",
            state.to_str().unwrap(),
            "--usage-store",
            &usage_store,
        ],
        &[],
        None,
    )
    .await;
    let data = key_info(&http(), &router.api, CLIENT_KEY).await;
    assert_eq!(data["usage"].as_f64(), Some(cost), "{data}");
    // The usage record reached the store before the process exited, costing what was settled.
    let page: Value = http()
        .get(format!("{}/admin/v1/generations", router.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{page}");
    assert_eq!(rows[0]["outcome"], "drain_cut", "{page}");
    assert_eq!(rows[0]["streamed"], true);
    let recorded: f64 = rows[0]["total_cost"].as_str().unwrap().parse().unwrap();
    assert_eq!(recorded, cost, "{page}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// #16.4c: an empty manifest file was accepted on SIGHUP (every client then got 401), and
/// failed reloads used up version numbers.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_would_drop_everything_is_refused_and_versions_only_count_reloads_served() {
    let manifest = slow_mock_manifests(2, 1);
    let router = RouterProcess::spawn(&manifest, &[], &[], None).await;
    let path = router_manifest(&router);
    let chat = || async {
        http()
            .post(format!("{}/v1/chat/completions", router.api))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": "test/mock", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status()
    };
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    for broken in [
        "",
        // Truncated mid-way: the Secrets and keys survive, the providers and routes do not.
        manifest
            .split("---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider")
            .next()
            .unwrap(),
        "apiVersion: switchboard.dev/v1alpha1\nkind: Provider\nspec: {type: nonsense",
    ] {
        std::fs::write(&path, broken).unwrap();
        hup(&router);
        settle().await;
        assert_eq!(chat().await, 200, "still serving after {broken:?}");
        let metrics = get_text(&http(), &format!("{}/metrics", router.admin)).await;
        assert_eq!(metric(&metrics, "switchboard_config_version "), Some(1.0));
        let ready = http()
            .get(format!("{}/readyz", router.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
    }
    let metrics = get_text(&http(), &format!("{}/metrics", router.admin)).await;
    assert_eq!(
        metric(
            &metrics,
            r#"switchboard_config_refused_total{reason="empties"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    // A good change is the next version: 2, not 5.
    std::fs::write(&path, &manifest).unwrap();
    hup(&router);
    settle().await;
    let metrics = get_text(&http(), &format!("{}/metrics", router.admin)).await;
    assert_eq!(metric(&metrics, "switchboard_config_version "), Some(2.0));

    // Allowed on purpose, an empty file empties the router.
    let router = RouterProcess::spawn(&manifest, &["--allow-empty-reload"], &[], None).await;
    std::fs::write(router_manifest(&router), "").unwrap();
    hup(&router);
    settle().await;
    let metrics = get_text(&http(), &format!("{}/metrics", router.admin)).await;
    assert_eq!(metric(&metrics, "switchboard_config_version "), Some(2.0));
}

/// The manifest file a router process was started on.
fn router_manifest(router: &RouterProcess) -> std::path::PathBuf {
    let environ = std::fs::read(format!("/proc/{}/environ", router.child.id())).unwrap();
    let var = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"SWITCHBOARD_MANIFESTS="))
        .expect("SWITCHBOARD_MANIFESTS is set");
    std::path::PathBuf::from(String::from_utf8(var.to_vec()).unwrap())
}
