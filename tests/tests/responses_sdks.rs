//! The official SDKs, unmodified, against the router's Responses, chat and completions
//! endpoints, each driven by a script in `tests/sdk/` with the Python `make test` provides:
//!
//! - `openai` (pinned in `tests/sdk/requirements.txt`): `responses.create`, `responses.stream`,
//!   `responses.parse` with a pydantic model, a function-tool loop with `previous_response_id`,
//!   retrieve / input items / delete — through an `openai` target (passed through natively) and
//!   an `anthropic` one (translated);
//! - the OpenAI Agents SDK with its default model (`gpt-5.6-luna`, routed to the `anthropic`
//!   target), non-streamed and streamed, with a strict function tool;
//! - `openrouter`: chat and streamed chat (validated by the SDK itself) and its typed errors.
//!
//! The upstream is the mock in `tests/src/upstreams`, speaking OpenAI Responses and Anthropic
//! Messages.

use std::{path::Path, process::Stdio, time::Duration};

use switchboard_e2e::{
    tools::{Tool, optional},
    upstreams::Upstream,
};
use switchboard_router::{server, state::Settings};

const KEY: &str = "sk-sb-sdk-test-0123456789";
const UPSTREAM_KEY: &str = "sk-upstream-sdk-0123456789";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn manifests(upstream: &Upstream) -> String {
    let url = upstream.url();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{up: {UPSTREAM_KEY}, key: {KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: sdk}}
spec: {{secretRef: {{name: s, key: key}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: oai}}
spec:
  type: openai
  baseURL: {url}
  credentials: {{secretRef: {{name: s, key: up}}}}
  models: [{{name: gpt-x, pricing: {{inputUSDPerMillion: "1", outputUSDPerMillion: "4"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: claude}}
spec:
  type: anthropic
  baseURL: {url}
  credentials: {{secretRef: {{name: s, key: up}}}}
  models: [{{name: claude-x, maxOutputTokens: 4096, pricing: {{inputUSDPerMillion: "3", outputUSDPerMillion: "15"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: native}}
spec: {{model: openai/gpt, targets: [{{provider: oai, model: gpt-x}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: translated}}
spec: {{model: anthropic/claude, targets: [{{provider: claude, model: claude-x}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: agents-default}}
spec: {{model: gpt-5.6-luna, targets: [{{provider: claude, model: claude-x}}]}}
"#
    )
}

/// A router on the mock upstream (serving until dropped), and its client API base URL.
async fn start(upstream: &Upstream) -> (server::RunningServer, String) {
    let path = std::env::temp_dir().join(format!(
        "switchboard-sdks-{}-{}.yaml",
        std::process::id(),
        upstream.addr.port()
    ));
    std::fs::write(&path, manifests(upstream)).unwrap();
    let state = switchboard_router::state_from_manifests(&[path], Settings::default()).unwrap();
    let router = server::start(
        state,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let api = format!("http://{}", router.api_addr);
    (router, api)
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk").join(name)
}

/// Runs a script with `args` and `env`; its output, after asserting it succeeded.
async fn run(python: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script(name))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {name} {args:?}\n{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_sdk_responses_api_through_native_and_translated_targets() {
    let Some(python) = optional(Tool::Python, "openai SDK Responses") else {
        return;
    };
    let upstream = Upstream::start(UPSTREAM_KEY).await;
    let (_router, api) = start(&upstream).await;
    let base = format!("{api}/v1");
    for model in ["openai/gpt", "anthropic/claude"] {
        let out = run(
            &python,
            "openai_responses_check.py",
            &[&base, KEY, model],
            &[],
        )
        .await;
        assert_eq!(out.matches("\nok   ").count(), 5, "{out}");
    }
    let paths: Vec<String> = upstream.seen().into_iter().map(|s| s.path).collect();
    assert!(paths.contains(&"/v1/responses".to_string()));
    assert!(paths.contains(&"/v1/messages".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_sdk_with_its_default_model() {
    let Some(python) = optional(Tool::Python, "OpenAI Agents SDK") else {
        return;
    };
    let upstream = Upstream::start(UPSTREAM_KEY).await;
    let (_router, api) = start(&upstream).await;
    let base = format!("{api}/v1");
    run(
        &python,
        "agents_check.py",
        &[],
        &[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", KEY),
            ("OPENAI_AGENTS_DISABLE_TRACING", "1"),
        ],
    )
    .await;
    // Its default request: non-streamed Responses with a strict tool, served by the route named
    // after its default model.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4, "two calls per run");
    let first = &seen[0].body;
    assert_eq!(first["model"], "claude-x");
    assert_eq!(first["tools"][0]["name"], "run_shell");
    assert_eq!(first["stream"], serde_json::Value::Null);
    assert_eq!(seen[2].body["stream"], true, "run_streamed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openrouter_sdk_validates_chat_and_typed_errors() {
    let Some(python) = optional(Tool::Python, "OpenRouter SDK") else {
        return;
    };
    let upstream = Upstream::start(UPSTREAM_KEY).await;
    let (_router, api) = start(&upstream).await;
    let out = run(
        &python,
        "openrouter_check.py",
        &[&format!("{api}/api/v1"), KEY, "anthropic/claude"],
        &[],
    )
    .await;
    assert_eq!(out.matches("\nok   ").count(), 3, "{out}");
}
