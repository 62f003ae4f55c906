//! `POST /v1/messages`: Anthropic's Messages API in front of any provider, over real sockets —
//! exact event sequences and error shapes from Rust, then the official `anthropic` Python SDK
//! (and the `openai` SDK with tools routed to the Anthropic mock) driven by scripts in
//! `tests/sdk/`.
//!
//! The SDK tests need `SWITCHBOARD_TEST_PYTHON` pointing at a Python with the SDKs pinned in
//! `tests/sdk/requirements.txt` (`make test` builds `.venv` and sets it). Without it they fail,
//! unless `SWITCHBOARD_SKIP_SDK_TESTS=1`, which skips them loudly.

#[path = "support/providers.rs"]
mod provider_mocks;
mod support;

use std::{io::Write, path::PathBuf, process::Stdio, time::Duration};

use provider_mocks::{PROVIDER_KEY, ProviderMock, Wire};
use serde_json::{Value, json};
use support::{CLIENT_KEY, TestRouter};

fn manifests(openai: &ProviderMock, anthropic: &ProviderMock) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{key: {PROVIDER_KEY}, client: {CLIENT_KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: client}}
spec: {{secretRef: {{name: s, key: client}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: vllm}}
spec:
  type: openaiCompatible
  baseURL: {}/v1
  credentials: {{secretRef: {{name: s, key: key}}}}
  models: [{{name: m}}, {{name: rate-limited}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: claude}}
spec:
  type: anthropic
  baseURL: {}/v1
  credentials: {{secretRef: {{name: s, key: key}}}}
  models: [{{name: claude-x, pricing: {{inputUSDPerMillion: "3", outputUSDPerMillion: "15"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: oai}}
spec: {{model: oai/chat, targets: [{{provider: vllm, model: m}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: limited}}
spec: {{model: oai/limited, targets: [{{provider: vllm, model: rate-limited}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: claude}}
spec: {{model: anthropic/chat, targets: [{{provider: claude, model: claude-x}}]}}
"#,
        openai.url(),
        anthropic.url()
    )
}

async fn messages(router: &TestRouter, key: &str, body: Value) -> reqwest::Response {
    router
        .http
        .post(router.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `(event, data)` pairs of an Anthropic SSE body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let mut lines = f.lines();
            let event = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_are_answered_in_anthropic_format_from_an_openai_upstream() {
    let up = ProviderMock::start(Wire::OpenAi).await;
    let claude = ProviderMock::start(Wire::Anthropic).await;
    let router = TestRouter::start(&manifests(&up, &claude)).await;

    let resp = messages(
        &router,
        CLIENT_KEY,
        json!({"model": "oai/chat", "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-generation-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "oai/chat");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello there!"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 112, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 200, "cost": 0})
    );
    // What went upstream: OpenAI shape, system message with its cache_control part.
    let sent = up.last().body;
    assert_eq!(sent["model"], "m");
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]})
    );

    // Streamed tool call: the exact event sequence.
    let resp = messages(
        &router,
        CLIENT_KEY,
        json!({"model": "oai/chat", "max_tokens": 100, "stream": true,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Weather?"}]}),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let ev = events(&resp.text().await.unwrap());
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "tool_use", "id": "call_az1", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        ev[3].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(ev[5].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[5].1["usage"]["output_tokens"], 20);

    // Errors in Anthropic's shape with the right status.
    let resp = messages(
        &router,
        "sk-sb-nope-000000000000",
        json!({"model": "oai/chat", "max_tokens": 1, "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "Invalid API key"}})
    );
    let resp = messages(
        &router,
        CLIENT_KEY,
        json!({"model": "oai/chat", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let resp = messages(&router, CLIENT_KEY, json!({"model": "oai/limited", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
    // Also under /api/v1.
    let resp = router.http.post(router.url("/api/v1/messages")).header("x-api-key", CLIENT_KEY)
        .json(&json!({"model": "oai/chat", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}))
        .send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn thinking_round_trips_through_messages_to_anthropic() {
    let up = ProviderMock::start(Wire::OpenAi).await;
    let claude = ProviderMock::start(Wire::Anthropic).await;
    let router = TestRouter::start(&manifests(&up, &claude)).await;
    let body = json!({"model": "anthropic/chat", "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [{"role": "user", "content": "Hi"}]});
    let v: Value = messages(&router, CLIENT_KEY, body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["content"][0],
        json!({"type": "thinking", "thinking": "The user greets me.", "signature": provider_mocks::SIGNATURE})
    );
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 100);
    assert_eq!(
        claude.last().body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000})
    );
    // Streamed: thinking_delta then signature_delta, then the text block.
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    let ev = events(
        &messages(&router, CLIENT_KEY, sb)
            .await
            .text()
            .await
            .unwrap(),
    );
    let deltas: Vec<&str> = ev
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        deltas,
        [
            "thinking_delta",
            "signature_delta",
            "text_delta",
            "text_delta"
        ]
    );
    // The next turn sends the signed thinking block back to Anthropic unchanged.
    let mut next = body;
    next["messages"] = json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": v["content"]}, {"role": "user", "content": "Again"}]);
    assert_eq!(messages(&router, CLIENT_KEY, next).await.status(), 200);
    assert_eq!(
        claude.last().body["messages"][1]["content"][0]["signature"],
        provider_mocks::SIGNATURE
    );
}

// ---------------------------------------------------------------------------------------------
// Official SDKs

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(rel)
}

fn pinned(package: &str) -> String {
    let reqs = std::fs::read_to_string(repo_path("tests/sdk/requirements.txt")).unwrap();
    reqs.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{package}==")))
        .unwrap_or_else(|| panic!("tests/sdk/requirements.txt pins {package}==<version>"))
        .trim()
        .to_string()
}

/// The Python to run the SDK scripts with, or `None` when skipping on purpose.
fn python(test: &str) -> Option<std::ffi::OsString> {
    match std::env::var_os("SWITCHBOARD_TEST_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => Some(p),
        None if std::env::var("SWITCHBOARD_SKIP_SDK_TESTS").as_deref() == Ok("1") => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: SWITCHBOARD_SKIP_SDK_TESTS=1 and SWITCHBOARD_TEST_PYTHON is \
                 unset. Nothing about SDK compatibility was tested. ***\n"
            );
            None
        }
        None => panic!(
            "SWITCHBOARD_TEST_PYTHON is not set: run `make test` (it builds .venv with \
             tests/sdk/requirements.txt and sets it), or set it to a Python with the pinned SDKs. \
             To skip on purpose, set SWITCHBOARD_SKIP_SDK_TESTS=1."
        ),
    }
}

async fn run_script(python: &std::ffi::OsStr, script: &str, args: &[String]) -> String {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(repo_path(script))
        .args(args)
        .env("SWITCHBOARD_EXPECT_ANTHROPIC_VERSION", pinned("anthropic"))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the SDK script finishes within 2 minutes")
        .expect("SWITCHBOARD_TEST_PYTHON runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn official_anthropic_python_sdk_against_messages_routed_to_openai() {
    let Some(python) = python("anthropic SDK compatibility test") else {
        return;
    };
    let up = ProviderMock::start(Wire::OpenAi).await;
    let claude = ProviderMock::start(Wire::Anthropic).await;
    let router = TestRouter::start(&manifests(&up, &claude)).await;
    let out = run_script(
        &python,
        "tests/sdk/anthropic_client_check.py",
        &[router.url(""), CLIENT_KEY.into(), "oai/chat".into()],
    )
    .await;
    for check in [
        "message",
        "stream",
        "tools",
        "tools-stream",
        "auth-error",
        "not-found",
        "count-tokens",
        "batches-404",
    ] {
        assert!(out.lines().any(|l| l == format!("ok {check}")), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_openai_python_sdk_with_tools_against_anthropic() {
    let Some(python) = python("openai SDK tools-to-Anthropic test") else {
        return;
    };
    let up = ProviderMock::start(Wire::OpenAi).await;
    let claude = ProviderMock::start(Wire::Anthropic).await;
    let router = TestRouter::start(&manifests(&up, &claude)).await;
    let out = run_script(
        &python,
        "tests/sdk/openai_tools_check.py",
        &[
            router.url("/v1"),
            CLIENT_KEY.into(),
            "anthropic/chat".into(),
        ],
    )
    .await;
    for check in ["tools", "tools-stream", "json-schema"] {
        assert!(out.lines().any(|l| l == format!("ok {check}")), "{out}");
    }
    // The Anthropic mock saw a tool_result answering its tool_use.
    assert!(
        claude
            .seen()
            .iter()
            .any(|s| s.raw.contains("\"tool_use_id\":\"toolu_01A\""))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_validates_against_the_anthropic_sdks_models() {
    let Some(python) = python("Anthropic SDK model validation") else {
        return;
    };
    let up = ProviderMock::start(Wire::OpenAi).await;
    let claude = ProviderMock::start(Wire::Anthropic).await;
    let router = TestRouter::start(&manifests(&up, &claude)).await;
    let dir = std::env::temp_dir().join(format!("sb-anthropic-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = Vec::new();
    let mut keep = |name: &str, kind: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        args.push(format!("{kind}={}", path.display()));
    };
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    for (model, how) in [("anthropic/chat", "native"), ("oai/chat", "translated")] {
        for stream in [false, true] {
            let body = json!({"model": model, "max_tokens": 100, "stream": stream,
                "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"},
                "messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather?"}],
                "tools": tools});
            let text = messages(&router, CLIENT_KEY, body)
                .await
                .text()
                .await
                .unwrap();
            let kind = if stream {
                "anthropic-sse"
            } else {
                "anthropic-message"
            };
            keep(&format!("{how}-{stream}.txt"), kind, text);
        }
        let count = router
            .http
            .post(router.url("/v1/messages/count_tokens"))
            .header("x-api-key", CLIENT_KEY)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "foo"}], "tools": tools}))
            .send()
            .await
            .unwrap();
        assert_eq!(count.status(), 200);
        keep(
            &format!("{how}-count.json"),
            "anthropic-count-tokens",
            count.text().await.unwrap(),
        );
    }
    let unauthorized = messages(&router, "sk-sb-nope-000000000000", json!({})).await;
    keep(
        "401.json",
        "anthropic-error",
        unauthorized.text().await.unwrap(),
    );
    let missing = router
        .http
        .get(router.url("/v1/messages/batches"))
        .send()
        .await
        .unwrap();
    keep("404.json", "anthropic-error", missing.text().await.unwrap());
    let out = run_script(&python, "tests/sdk/anthropic_validate.py", &args).await;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("OK ")).count(),
        8,
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
