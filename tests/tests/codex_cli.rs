//! Codex CLI (pinned in `tests/agents/package.json`) in its default configuration — only a
//! `model_providers` entry pointing at the router, as `docs/migration.md` shows — runs `codex exec`
//! with a plain prompt and with a shell tool round trip, through an `openai` target (Responses
//! passed through natively to a mock speaking OpenAI's event stream) and through an `anthropic`
//! target (translated; a mock speaking Anthropic Messages), each under a $1 Budget that admits the
//! session only with `fitMaxTokens` on (Codex sends no output limit, so the worst case is the
//! model's 128000 output tokens, $1.28): without fitting its first call gets a 402, with fitting
//! every call is admitted with a lower limit, said in a header and sent upstream. Codex's default
//! model (`gpt-6.2-sol`) is the route's name; its default request carries its tools in an
//! `additional_tools` item, a freeform `exec` tool in the `functions` namespace, reasoning with
//! `store: false`.
//!
//! Every request goes through a recording proxy in front of the router, so the test sums the
//! `usage.cost` the router told Codex and checks the Budget's settled spend equals it exactly.
//!
//! Needs `SWITCHBOARD_TEST_CODEX` (`make test` installs the CLI with `npm ci`); without it the
//! test says so and skips, or fails under `CI`.

use std::{
    path::Path,
    process::Stdio,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::Request,
    response::Response,
};
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::Value;
use switchboard_e2e::{
    tools::{Tool, optional},
    upstreams::{FINAL_TEXT, PLAIN_TEXT, THINKING_SIGNATURE, Upstream},
};
use switchboard_router::{providers::clients::install_crypto_provider, server, state::Settings};

const KEY: &str = "sk-sb-codex-test-0123456789";
const UPSTREAM_KEY: &str = "sk-upstream-codex-0123456789";
/// Codex CLI's default model when none is configured.
const CODEX_DEFAULT_MODEL: &str = "gpt-6.2-sol";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn manifests(provider_type: &str, model: &str, upstream: &Upstream, fit: bool) -> String {
    let fit = if fit {
        ", fitMaxTokens: {enabled: true, minTokens: 1024}"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{up: {UPSTREAM_KEY}, key: {KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: codex, labels: {{team: agents}}}}
spec: {{secretRef: {{name: s, key: key}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: up}}
spec:
  type: {provider_type}
  baseURL: {}
  credentials: {{secretRef: {{name: s, key: up}}}}
  models: [{{name: {model}, maxOutputTokens: 128000, pricing: {{inputUSDPerMillion: "1.25", outputUSDPerMillion: "10"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: codex-default}}
spec: {{model: {CODEX_DEFAULT_MODEL}, targets: [{{provider: up, model: {model}}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: agents}}
spec: {{limitUSD: "1", window: monthly, scope: {{team: agents}}{fit}}}
"#,
        upstream.url()
    )
}

/// A response being relayed: its status, the output limit the router fitted (its
/// `x-switchboard-max-tokens-fitted` header) and the body, kept as it passes.
struct Exchange {
    status: u16,
    fitted: Option<u64>,
    body: Arc<Mutex<Vec<u8>>>,
}

/// A reverse proxy to the router that keeps every response it relays.
#[derive(Clone)]
struct Tap {
    router: String,
    client: reqwest::Client,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

async fn relay(State(tap): State<Tap>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut out = tap
        .client
        .request(parts.method, format!("{}{}", tap.router, parts.uri))
        .body(body);
    for (k, v) in parts.headers.iter().filter(|(k, _)| *k != "host") {
        out = out.header(k, v);
    }
    let resp = out.send().await.unwrap();
    let kept = Arc::new(Mutex::new(Vec::new()));
    tap.exchanges.lock().unwrap().push(Exchange {
        status: resp.status().as_u16(),
        fitted: resp
            .headers()
            .get("x-switchboard-max-tokens-fitted")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        body: kept.clone(),
    });
    let mut builder = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let stream = resp.bytes_stream().map(move |chunk| {
        let chunk: Bytes = chunk.unwrap();
        kept.lock().unwrap().extend_from_slice(&chunk);
        Ok::<_, std::convert::Infallible>(chunk)
    });
    builder.body(Body::from_stream(stream)).unwrap()
}

impl Tap {
    async fn start(router: String) -> (Tap, String) {
        install_crypto_provider();
        let tap = Tap {
            router,
            client: reqwest::Client::new(),
            exchanges: Arc::default(),
        };
        let app = Router::new().fallback(relay).with_state(tap.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (tap, format!("http://{addr}"))
    }

    /// The exact `usage.cost` of every terminal event the router sent.
    fn costs(&self) -> Vec<Decimal> {
        let exchanges = self.exchanges.lock().unwrap();
        let mut out = Vec::new();
        for e in exchanges.iter() {
            let text = String::from_utf8_lossy(&e.body.lock().unwrap()).into_owned();
            for frame in text.split("\n\n") {
                let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                if !frame.contains("event: response.completed") {
                    continue;
                }
                // The cost as written (an exact decimal), not through floating point.
                let v: Value = serde_json::from_str(data).unwrap();
                assert!(v["response"]["usage"]["cost"].is_number(), "{data}");
                let at = data.rfind("\"cost\":").expect("usage.cost") + 7;
                let text: String = data[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                out.push(Decimal::from_str(&text).unwrap());
            }
        }
        out
    }
}

/// Runs `codex exec PROMPT` in its default configuration against `base` (the proxy); its stdout
/// (the final message).
async fn codex_exec(codex: &Path, base: &str, prompt: &str) -> String {
    let (ok, stdout, stderr) = run_codex(codex, base, prompt).await;
    assert!(
        ok,
        "codex exec {prompt:?} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

/// Runs `codex exec PROMPT` as [`codex_exec`] does: whether it succeeded, its stdout and stderr.
async fn run_codex(codex: &Path, base: &str, prompt: &str) -> (bool, String, String) {
    let home = tempdir("home");
    let work = tempdir("work");
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model_provider = \"switchboard\"\n\n[model_providers.switchboard]\nname = \"Switchboard\"\nbase_url = \"{base}/v1\"\nenv_key = \"SWITCHBOARD_API_KEY\"\nwire_api = \"responses\"\n"
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(codex);
    cmd.args([
        "exec",
        "--skip-git-repo-check",
        "--disable",
        "plugins",
        prompt,
    ])
    .current_dir(&work)
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .env("HOME", &home)
    .env("CODEX_HOME", &codex_home)
    .env("TERM", "dumb")
    .env("SWITCHBOARD_API_KEY", KEY)
    .env("NO_PROXY", "127.0.0.1,localhost")
    .stdin(Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .expect("codex exec finished in time")
        .expect("codex runs");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&work);
    (out.status.success(), stdout, stderr)
}

fn tempdir(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-codex-{}-{what}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Budget's settled spend, once settlement (in the background) has caught up with `want`.
async fn settled_spend(router: &str, want: Decimal) -> Decimal {
    let client = reqwest::Client::new();
    let mut last = Decimal::ZERO;
    for _ in 0..100 {
        let v: Value = client
            .get(format!("{router}/api/v1/key"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        last = Decimal::from_str(v["data"]["budgets"][0]["spent_usd"].as_str().unwrap()).unwrap();
        if last == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// A router on `upstream` (a Provider of `provider_type` serving `model`), its Budget fitting
/// or not, behind a [`Tap`].
struct Gateway {
    /// Serves while held.
    _router: server::RunningServer,
    /// The router's URL.
    api: String,
    tap: Tap,
    /// The tap's URL, where Codex is pointed.
    base: String,
}

async fn gateway(provider_type: &str, model: &str, upstream: &Upstream, fit: bool) -> Gateway {
    let path = tempdir("manifests").join("m.yaml");
    std::fs::write(&path, manifests(provider_type, model, upstream, fit)).unwrap();
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
    let (tap, base) = Tap::start(api.clone()).await;
    Gateway {
        _router: router,
        api,
        tap,
        base,
    }
}

/// Codex's session through `provider_type`: refused by the Budget without fitting, then the
/// prompt and the tool round trip with fitting on. Returns the upstream of the second.
async fn session(codex: &Path, provider_type: &str, upstream_model: &str) -> Upstream {
    let upstream = Upstream::start(UPSTREAM_KEY).await;
    let refusing = gateway(provider_type, upstream_model, &upstream, false).await;
    let (ok, _, stderr) = run_codex(codex, &refusing.base, "Say hello").await;
    assert!(!ok, "{provider_type}: admitted without fitting");
    let statuses: Vec<u16> = refusing
        .tap
        .exchanges
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.status)
        .collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 402),
        "{provider_type}: {statuses:?}\n{stderr}"
    );
    assert!(upstream.seen().is_empty(), "{provider_type}");

    let upstream = Upstream::start(UPSTREAM_KEY).await;
    let gw = gateway(provider_type, upstream_model, &upstream, true).await;
    let (api, tap, base) = (&gw.api, &gw.tap, &gw.base);
    let plain = codex_exec(codex, base, "Say hello").await;
    assert_eq!(plain, PLAIN_TEXT, "{provider_type}: plain prompt");
    let tool = codex_exec(codex, base, "Run the shell command: echo hi").await;
    assert_eq!(tool, FINAL_TEXT, "{provider_type}: tool round trip");

    let costs = tap.costs();
    assert_eq!(
        costs.len(),
        3,
        "{provider_type}: one call for the prompt, two for the round trip"
    );
    for e in tap.exchanges.lock().unwrap().iter() {
        assert_eq!(e.status, 200, "{provider_type}");
        // The $1 Budget covers fewer than the model's 128000 output tokens: fitted.
        let fitted = e.fitted.expect("a fitted output limit");
        assert!(
            (1024..128_000).contains(&fitted),
            "{provider_type}: {fitted}"
        );
    }
    let total: Decimal = costs.iter().sum();
    assert!(total > Decimal::ZERO);
    assert_eq!(
        settled_spend(api, total).await,
        total,
        "{provider_type}: the Budget's settled spend is the sum of usage.cost"
    );
    upstream
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_exec_in_its_default_configuration_through_openai_and_anthropic() {
    let Some(codex) = optional(Tool::Codex, "codex_cli") else {
        return;
    };

    // An openai target: Codex's request passes through natively.
    let up = session(&codex, "openai", "gpt-6.2-sol").await;
    let seen = up.seen();
    assert!(seen.iter().all(|s| s.path == "/v1/responses"));
    assert!(
        seen.iter()
            .all(|s| (1024..128_000).contains(&s.body["max_output_tokens"].as_u64().unwrap())),
        "the fitted limit went upstream"
    );
    let call = &seen[1].body;
    assert_eq!(call["store"], false);
    assert_eq!(
        call["input"][0]["type"], "additional_tools",
        "forwarded as Codex sent it"
    );
    let replay = &seen[2].body["input"];
    let items: Vec<&str> = replay
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert!(
        items.ends_with(&["reasoning", "custom_tool_call", "custom_tool_call_output"]),
        "Codex replays the reasoning and the exec call: {items:?}"
    );
    let output = replay.as_array().unwrap().last().unwrap()["output"].to_string();
    assert!(
        output.contains("hi\\n"),
        "the shell really ran echo hi: {output}"
    );

    // An anthropic target: translated both ways.
    let up = session(&codex, "anthropic", "claude-x").await;
    let seen = up.seen();
    assert!(seen.iter().all(|s| s.path == "/v1/messages"));
    assert!(
        seen.iter()
            .all(|s| (1024..128_000).contains(&s.body["max_tokens"].as_u64().unwrap())),
        "the fitted limit went upstream"
    );
    let tools: Vec<&str> = seen[1].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"functions__exec"), "{tools:?}");
    let turn2 = &seen[2].body["messages"];
    let assistant = turn2
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(
        assistant["content"][0]["signature"], THINKING_SIGNATURE,
        "the thinking block came back through Codex's reasoning item"
    );
    assert_eq!(assistant["content"][1]["name"], "functions__exec");
    let result = turn2.as_array().unwrap().last().unwrap()["content"][0].clone();
    assert_eq!(result["type"], "tool_result");
    assert!(
        result["content"].as_str().unwrap().contains("hi\n"),
        "the shell really ran echo hi: {result}"
    );
}
