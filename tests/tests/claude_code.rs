//! Claude Code itself (pinned in `tests/agents/package.json`, `SWITCHBOARD_TEST_CLAUDE`), in its
//! default setup — only `ANTHROPIC_BASE_URL` and `ANTHROPIC_API_KEY` set, its default model
//! `claude-opus-5-5` routed by the router, `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` so it never
//! looks for api.anthropic.com — completes a prompt and a Bash tool round trip through an
//! `anthropic` target (the request passed through natively) and through an `openaiCompatible`
//! target (translated), each under a Budget that admits the session only with `fitMaxTokens` on:
//! Claude Code asks for `max_tokens: 128000`, whose worst case is over the budget's limit.
//!
//! A recording proxy between Claude Code and the router keeps every exchange, so the test can say
//! what the router answered (the fitted limit, `usage.cost`) and check that the budget settled
//! exactly the sum of the `usage.cost` Claude Code was told. The mock upstreams
//! (`switchboard_e2e::agent_upstreams`) record what reached them: the Anthropic one must have got
//! Claude Code's request as sent — its betas, adaptive thinking, `output_config`,
//! `context_management`, `defer_loading`, the system message in place — with the fitted
//! `max_tokens` and the provider's key, never the client's.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    response::Response,
};
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use switchboard_e2e::{
    agent_upstreams::{AgentUpstream, Dialect, GREETING},
    tools::{Tool, optional},
};
use switchboard_router::{providers::clients::install_crypto_provider, server, state::Settings};

const KEY: &str = "sk-sb-claude-code-0123456789";
const PROVIDER_KEY: &str = "sk-provider-claude-code-SECRET-0123";
/// Claude Code's default model, as the route names it.
const MODEL: &str = "claude-opus-5-5";
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

/// A router on `upstream` (a Provider of `provider_type`) with a $1 budget, fitting or not.
fn manifest(provider_type: &str, upstream: &AgentUpstream, fit: bool) -> String {
    let fit = if fit {
        ", fitMaxTokens: {enabled: true, minTokens: 1024}"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{client: {KEY}, upstream: {PROVIDER_KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: dev}}
spec: {{secretRef: {{name: s, key: client}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: up}}
spec:
  type: {provider_type}
  baseURL: {}
  credentials: {{secretRef: {{name: s, key: upstream}}}}
  models: [{{name: mock-model, pricing: {{inputUSDPerMillion: "5", outputUSDPerMillion: "25"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: opus}}
spec: {{model: {MODEL}, targets: [{{provider: up, model: mock-model}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: agents}}
spec: {{limitUSD: "1", scope: {{apiKeys: [dev]}}{fit}}}
"#,
        upstream.base_url()
    )
}

/// One request through the proxy and what the router answered.
struct Exchange {
    path: String,
    request_headers: http::HeaderMap,
    status: u16,
    response_headers: http::HeaderMap,
    body: Arc<Mutex<Vec<u8>>>,
}

impl Exchange {
    fn body(&self) -> String {
        String::from_utf8_lossy(&self.body.lock().unwrap()).into_owned()
    }
}

#[derive(Clone)]
struct ProxyState {
    router: String,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Exchange>>>,
}

/// Forwards a request to the router as it came and streams the answer back, keeping a copy.
async fn forward(State(st): State<ProxyState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let url = format!(
        "{}{}",
        st.router,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = st.http.request(parts.method.clone(), url).body(body);
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.unwrap();
    let copy = Arc::new(Mutex::new(Vec::new()));
    st.log.lock().unwrap().push(Exchange {
        path: parts.uri.to_string(),
        request_headers: parts.headers,
        status: resp.status().as_u16(),
        response_headers: resp.headers().clone(),
        body: copy.clone(),
    });
    let mut builder = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if !matches!(
            k.as_str(),
            "transfer-encoding" | "content-length" | "connection"
        ) {
            builder = builder.header(k, v);
        }
    }
    let stream = resp.bytes_stream().map(move |chunk| {
        let chunk: Bytes = chunk.unwrap_or_default();
        copy.lock().unwrap().extend_from_slice(&chunk);
        Ok::<_, std::convert::Infallible>(chunk)
    });
    builder.body(Body::from_stream(stream)).unwrap()
}

/// A router with a recording proxy in front of it.
struct Gateway {
    /// The proxy's URL, for Claude Code.
    proxy: String,
    /// What went through the proxy.
    log: Arc<Mutex<Vec<Exchange>>>,
    /// The router's own URL.
    router_url: String,
    _router: server::RunningServer,
}

/// A router on `manifest` with a recording proxy in front of it.
async fn start(manifest: &str, dir: &Path) -> Gateway {
    let path = dir.join("manifests.yaml");
    std::fs::write(&path, manifest).unwrap();
    let state = switchboard_router::state_from_manifests(&[path], Settings::default()).unwrap();
    let router = server::start(
        state,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let router_url = format!("http://{}", router.api_addr);
    install_crypto_provider();
    let log = Arc::new(Mutex::new(Vec::new()));
    let st = ProxyState {
        router: router_url.clone(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        log: log.clone(),
    };
    let app = Router::new().fallback(forward).with_state(st);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Gateway {
        proxy: format!("http://{addr}"),
        log,
        router_url,
        _router: router,
    }
}

/// Runs `claude -p <prompt> --output-format json` against `base_url` in a fresh HOME and work
/// directory; its exit status and JSON result.
async fn claude(program: &Path, base_url: &str, prompt: &str, dir: &Path) -> (bool, Value) {
    let home = dir.join("home");
    let work = dir.join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = tokio::process::Command::new(program);
    cmd.current_dir(&work)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("TERM", "dumb")
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_API_KEY", KEY)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .args(["-p", prompt, "--output-format", "json"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("claude did not finish within {RUN_TIMEOUT:?}"))
        .expect("claude runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "claude printed no JSON result ({}):\n--- stdout\n{stdout}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), result)
}

/// The exact `usage.cost` values in a body.
fn costs(text: &str) -> Vec<Decimal> {
    text.match_indices("\"cost\":")
        .map(|(i, k)| {
            let rest = &text[i + k.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap();
            Decimal::from_str(&rest[..end]).unwrap()
        })
        .collect()
}

/// Checks every Messages exchange Claude Code had through the proxy, and sums the `usage.cost`
/// the router told it.
fn answers_told(log: &[Exchange]) -> Decimal {
    let messages: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.path.starts_with("/v1/messages"))
        .collect();
    // One call for the prompt, two for the round trip; none repeated non-streamed.
    assert_eq!(
        messages.len(),
        3,
        "{:?}",
        log.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
    let mut told = Decimal::ZERO;
    for e in &messages {
        assert_eq!(e.path, "/v1/messages?beta=true");
        assert_eq!(e.status, 200, "{}", e.body());
        assert!(e.response_headers.get("content-encoding").is_none());
        assert!(
            e.request_headers["accept-encoding"]
                .to_str()
                .unwrap()
                .contains("zstd")
        );
        // Claude Code asked for 128000 tokens; the $1 budget covers fewer: fitted.
        let fitted: u64 = e.response_headers["x-switchboard-max-tokens-fitted"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1024..128_000).contains(&fitted), "{fitted}");
        let body = e.body();
        assert!(body.lines().filter(|l| l.starts_with("data: ")).count() > 3);
        let c = costs(&body);
        assert_eq!(c.len(), 1, "one usage.cost per answer: {body}");
        told += c[0];
    }
    told
}

/// The budget's settled spend once no reservation is outstanding.
async fn settled(router_url: &str) -> Decimal {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..200 {
        let info: Value = http
            .get(format!("{router_url}/api/v1/key"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let b = &info["data"]["budgets"][0];
        if b["reserved_usd"] == "0" {
            return Decimal::from_str(b["spent_usd"].as_str().unwrap()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("reservations never settled");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-claude-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The prompt and the tool round trip through `provider_type`, with fitting on; returns the
/// upstream for provider-specific checks.
async fn session(program: &Path, provider_type: &str, dialect: Dialect) -> AgentUpstream {
    let upstream = AgentUpstream::start(dialect).await;
    let dir = scratch(provider_type);
    let gw = start(&manifest(provider_type, &upstream, true), &dir).await;
    let base = &gw.proxy;

    let (ok, result) = claude(program, base, "Say hello.", &dir.join("prompt")).await;
    assert!(ok, "{result}");
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], GREETING, "{result}");

    let (ok, result) = claude(
        program,
        base,
        "Run the shell command: echo hi",
        &dir.join("tool"),
    )
    .await;
    assert!(ok, "{result}");
    assert_eq!(result["result"], "The command printed: hi", "{result}");

    let told = answers_told(&gw.log.lock().unwrap());
    assert_eq!(settled(&gw.router_url).await, told);
    assert!(told > Decimal::ZERO && told <= Decimal::ONE);
    let _ = std::fs::remove_dir_all(&dir);
    upstream
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_through_an_anthropic_target_passed_through_natively() {
    let Some(program) = optional(Tool::Claude, "Claude Code through an anthropic target") else {
        return;
    };
    // Without fitting the budget refuses Claude Code's first call outright.
    let upstream = AgentUpstream::start(Dialect::Anthropic).await;
    let dir = scratch("refused");
    let gw = start(&manifest("anthropic", &upstream, false), &dir).await;
    let (ok, result) = claude(&program, &gw.proxy, "Say hello.", &dir).await;
    assert!(!ok && result["is_error"] == true, "{result}");
    assert_eq!(result["api_error_status"], 402, "{result}");
    assert_eq!(result["api_error_type"], "billing_error", "{result}");
    assert!(gw.log.lock().unwrap().iter().all(|e| e.status == 402));
    assert!(upstream.requests().is_empty());
    let _ = std::fs::remove_dir_all(&dir);

    let upstream = session(&program, "anthropic", Dialect::Anthropic).await;
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.path, "/v1/messages");
        let betas = r.header("anthropic-beta").unwrap_or_default();
        assert!(betas.contains("claude-code-20250219"), "{betas}");
        assert!(betas.contains("effort-2025-11-24"), "{betas}");
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(r.header("x-api-key"), Some(PROVIDER_KEY));
        assert_eq!(r.header("authorization"), None);
        assert!(!format!("{:?}", r.headers).contains(KEY));
        assert!(
            r.header("accept-encoding")
                .is_none_or(|e| !e.contains("zstd"))
        );
        let b = &r.body;
        assert_eq!(b["model"], "mock-model");
        assert_eq!(b["stream"], true);
        assert_eq!(b["thinking"]["type"], "adaptive", "{}", b["thinking"]);
        assert!(
            b["output_config"]["effort"].is_string(),
            "{}",
            b["output_config"]
        );
        assert!(b["context_management"]["edits"].is_array());
        assert_eq!(b["messages"][1]["role"], "system");
        assert!(b["system"][1]["cache_control"].is_object());
        let tools = b["tools"].as_array().unwrap();
        assert!(tools.iter().any(|t| t["defer_loading"] == true));
        assert!(tools.iter().any(|t| t["name"] == "Bash"));
        let max = b["max_tokens"].as_u64().unwrap();
        assert!(
            (1024..128_000).contains(&max),
            "fitted, not Claude Code's 128000: {max}"
        );
    }
    // The round trip's second call carried Bash's output back.
    let last = &seen[2].body;
    assert!(last.to_string().contains("\"tool_result\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_through_an_openai_compatible_target_translated() {
    let Some(program) = optional(
        Tool::Claude,
        "Claude Code through an openaiCompatible target",
    ) else {
        return;
    };
    let upstream = session(&program, "openaiCompatible", Dialect::OpenAiChat).await;
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
        let b = &r.body;
        let roles: Vec<&str> = b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(&roles[..3], ["system", "user", "system"], "{roles:?}");
        assert!(b["reasoning_effort"].is_string());
        assert!(b.get("context_management").is_none());
        let max = b["max_tokens"].as_u64().unwrap();
        assert!((1024..128_000).contains(&max), "{max}");
        assert!(
            b["tools"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["type"] == "function" && t.get("defer_loading").is_none())
        );
    }
    let last = &seen[2].body;
    assert_eq!(
        last["messages"].as_array().unwrap().last().unwrap()["role"],
        "tool"
    );
    assert_eq!(json!(last["stream"]), json!(true));
}
