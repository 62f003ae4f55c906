//! Test harness: a mock OpenAI-compatible upstream written here (it speaks the Chat Completions,
//! legacy Completions and Embeddings wire format from OpenAI's API reference) and a router started in-process on real
//! sockets with manifests written to a temporary file.
#![allow(dead_code)] // each test binary uses a different part of the harness

mod process;

#[allow(unused_imports)] // not every test binary starts a process
pub use process::RouterProcess;

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    trace::v1::Span,
};
use prost::Message;
use switchboard_router::{
    server,
    state::{AppState, Settings},
    usage::{UsageOptions, UsageTasks, retention::Retention},
};

/// The key the mock upstream expects; tests assert it never leaks to clients or logs.
pub const UPSTREAM_KEY: &str = "sk-upstream-SECRET-0123456789abcdef";
/// A client key accepted by the test manifests.
pub const CLIENT_KEY: &str = "sk-sb-test-client-0123456789";

/// What the mock upstream answers.
#[derive(Clone)]
pub enum Behaviour {
    /// A status and a JSON body.
    Json(u16, String),
    /// An SSE response: each string is written as-is (include the `data: ...\n\n` framing), with a
    /// pause between writes; the connection closes after the last one.
    Sse(Vec<String>, Duration),
    /// An SSE response that sends these frames at once, then goes silent for the duration.
    SseThenSilence(Vec<String>, Duration),
    /// Sends nothing for this long, then a valid completion.
    Stall(Duration),
    /// HTTP 429 with OpenAI's rate-limit error body and, if given, `Retry-After: <secs>`.
    RateLimited(Option<u64>),
    /// Each request takes the next behaviour; the last one repeats.
    Sequence(Vec<Behaviour>),
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

#[derive(Clone)]
struct MockState {
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// SSE responses whose body was dropped before every frame was sent (client went away).
    cancelled: Arc<AtomicUsize>,
}

/// Counts a streamed body as cancelled when it is dropped before its last frame.
struct CancelWatch {
    done: bool,
    cancelled: Arc<AtomicUsize>,
}

impl CancelWatch {
    /// The body was sent to the end.
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A running mock upstream.
pub struct MockUpstream {
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    cancelled: Arc<AtomicUsize>,
}

impl MockUpstream {
    /// Starts a mock answering `behaviour` on every POST.
    pub async fn start(behaviour: Behaviour) -> MockUpstream {
        let state = MockState {
            behaviour: Arc::new(Mutex::new(behaviour)),
            received: Arc::default(),
            cancelled: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .route("/v1/embeddings", post(answer))
            .route("/v1/completions", post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockUpstream {
            addr,
            behaviour: state.behaviour,
            received: state.received,
            cancelled: state.cancelled,
        }
    }

    /// `http://addr/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Changes what the mock answers.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Streams whose body was dropped before the last frame (the router hung up).
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

async fn answer(
    State(state): State<MockState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {UPSTREAM_KEY}"))
    {
        // OpenAI's real 401 shape, echoing part of the key as OpenAI does.
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {}","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#,
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        );
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let behaviour = {
        let mut current = state.behaviour.lock().unwrap();
        match &mut *current {
            Behaviour::Sequence(steps) if steps.len() > 1 => steps.remove(0),
            Behaviour::Sequence(steps) => steps[0].clone(),
            other => other.clone(),
        }
    };
    match behaviour {
        Behaviour::Sequence(_) => unreachable!("sequences hold plain behaviours"),
        Behaviour::RateLimited(retry_after) => {
            let mut resp = Response::builder()
                .status(429)
                .header("content-type", "application/json");
            if let Some(secs) = retry_after {
                resp = resp.header("retry-after", secs.to_string());
            }
            resp.body(Body::from(
                r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
            ))
            .unwrap()
        }
        Behaviour::Json(status, body) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
        Behaviour::Stall(pause) => {
            tokio::time::sleep(pause).await;
            (StatusCode::OK, UPSTREAM_COMPLETION).into_response()
        }
        Behaviour::Sse(..) | Behaviour::SseThenSilence(..) => {
            let (frames, pause, silence) = match behaviour {
                Behaviour::Sse(f, p) => (f, p, Duration::ZERO),
                Behaviour::SseThenSilence(f, s) => (f, Duration::ZERO, s),
                _ => unreachable!(),
            };
            let watch = CancelWatch {
                done: false,
                cancelled: state.cancelled.clone(),
            };
            let stream = futures_util::stream::unfold(
                (frames.into_iter(), watch),
                move |(mut it, watch)| async move {
                    match it.next() {
                        Some(f) => {
                            tokio::time::sleep(pause).await;
                            let frame = Ok::<_, std::convert::Infallible>(Bytes::from(f));
                            Some((frame, (it, watch)))
                        }
                        None => {
                            tokio::time::sleep(silence).await;
                            watch.finish();
                            None
                        }
                    }
                },
            );
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

/// An HTTP client for tests (installs the process's rustls crypto provider first).
pub fn http() -> reqwest::Client {
    switchboard_router::providers::clients::install_crypto_provider();
    reqwest::Client::new()
}

/// A new empty scratch directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-test-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Usage options: the store at `url`, the spill file `spill`, nothing deleted, a 5 s drain.
pub fn usage_options(url: &str, spill: PathBuf) -> UsageOptions {
    UsageOptions {
        url: url.to_string(),
        spill_file: spill,
        spill_max_bytes: 1 << 30,
        retention: Retention {
            records: None,
            rollups: None,
        },
        drain: Duration::from_secs(5),
    }
}

/// Usage options for a SQLite store in `dir`.
pub fn sqlite_usage(dir: &std::path::Path) -> UsageOptions {
    usage_options(
        &format!("sqlite://{}", dir.join("usage.db").display()),
        dir.join("usage-spill.jsonl"),
    )
}

/// A unique temporary file holding `contents`.
pub fn temp_manifest(contents: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "switchboard-test-{}-{}.yaml",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

/// Manifests: Provider(s) of type openaiCompatible pointing at `upstreams` (named `up0`, `up1`, ...
/// in order, each offering model `m`, priced 0.15/0.60 per million), a route `test/model` over
/// them in that order (as priorities 0, 1, ...), a mock-provider route `test/mock`, a route on an `anthropic` provider
/// `test/anthropic` (an Anthropic provider at a closed port), and client keys: `CLIENT_KEY` (allowed `test/*`), a disabled
/// one, an expired one.
pub fn manifests(upstreams: &[String]) -> String {
    let mut out = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: upstream}}
stringData: {{key: {UPSTREAM_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: clients}}
stringData:
  main: {CLIENT_KEY}
  disabled: sk-sb-test-disabled-0123456789
  expired: sk-sb-test-expired-01234567890
  other: sk-sb-test-other-0123456789
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: main, labels: {{team: a}}}}
spec:
  secretRef: {{name: clients, key: main}}
  allowedModels: ["test/*"]
  deniedModels: ["test/denied"]
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: disabled}}
spec: {{secretRef: {{name: clients, key: disabled}}, disabled: true}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: expired}}
spec: {{secretRef: {{name: clients, key: expired}}, expiresAt: "2020-01-01T00:00:00Z"}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: other}}
spec: {{secretRef: {{name: clients, key: other}}, allowedModels: ["other/*"]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: mock
  models: [{{name: mock-chat, pricing: {{inputUSDPerMillion: "1", outputUSDPerMillion: "2"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: claude}}
spec:
  type: anthropic
  baseURL: http://127.0.0.1:9/v1
  credentials: {{secretRef: {{name: upstream, key: key}}}}
  models: [{{name: claude-x}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: mock}}
spec: {{model: test/mock, targets: [{{provider: mock, model: mock-chat}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: denied}}
spec: {{model: test/denied, targets: [{{provider: mock, model: mock-chat}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: anthropic}}
spec: {{model: test/anthropic, targets: [{{provider: claude, model: claude-x}}]}}
"#
    );
    let mut targets = String::new();
    for (i, url) in upstreams.iter().enumerate() {
        out.push_str(&format!(
            r#"---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: up{i}}}
spec:
  type: openaiCompatible
  baseURL: {url}
  credentials: {{secretRef: {{name: upstream, key: key}}}}
  timeouts: {{connect: 2s, firstToken: 1500ms, idle: 1500ms, total: 20s}}
  models:
    - name: m
      pricing: {{inputUSDPerMillion: "0.15", outputUSDPerMillion: "0.60"}}
    - name: embed
      pricing: {{inputUSDPerMillion: "0.02"}}
"#
        ));
        targets.push_str(&format!("{{provider: up{i}, model: m, priority: {i}}},"));
    }
    if !upstreams.is_empty() {
        let embed_targets = targets.replace("model: m,", "model: embed,");
        out.push_str(&format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: model}}\nspec: {{model: test/model, targets: [{targets}]}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: embed}}\nspec: {{model: test/embed, targets: [{embed_targets}]}}\n"
        ));
    }
    out
}

/// A router running in-process.
pub struct TestRouter {
    pub server: server::RunningServer,
    pub http: reqwest::Client,
}

impl TestRouter {
    /// Starts a router on `manifests` with default settings.
    pub async fn start(manifests: &str) -> TestRouter {
        TestRouter::start_with(manifests, Settings::default()).await
    }

    /// Starts a router on `manifests` with `settings`.
    pub async fn start_with(manifests: &str, settings: Settings) -> TestRouter {
        let path = temp_manifest(manifests);
        let state = switchboard_router::state_from_manifests(&[path], settings).unwrap();
        TestRouter::serve(state).await
    }

    /// Starts a router on `manifests` with `settings`, recording usage as `usage` says; returns
    /// its state and the usage tasks too.
    pub async fn start_with_usage(
        manifests: &str,
        settings: Settings,
        usage: UsageOptions,
    ) -> (TestRouter, Arc<AppState>, UsageTasks) {
        let path = temp_manifest(manifests);
        let state = switchboard_router::state_from_manifests(&[path], settings).unwrap();
        let tasks = switchboard_router::usage::start(&state.metrics, &state.usage, usage)
            .await
            .unwrap();
        (TestRouter::serve(state.clone()).await, state, tasks)
    }

    /// Serves `state` on free ports.
    pub async fn serve(state: Arc<AppState>) -> TestRouter {
        let server = server::start(
            state,
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        TestRouter {
            server,
            http: http(),
        }
    }

    /// URL of a client API path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.api_addr)
    }

    /// URL of an admin path.
    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.admin_addr)
    }

    /// POSTs JSON to `/v1/chat/completions` with `CLIENT_KEY`.
    pub async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.chat_as(CLIENT_KEY, body).await
    }

    /// POSTs JSON to `/v1/chat/completions` with `key`.
    pub async fn chat_as(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        post_chat(&self.http, &self.url(""), key, &body).await
    }

    /// `GET /api/v1/key` with `key`: its `data`.
    pub async fn key_info(&self, key: &str) -> serde_json::Value {
        key_info(&self.http, &self.url(""), key).await
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics(&self) -> String {
        get_text(&self.http, &self.admin("/metrics")).await
    }
}

/// An OpenAI chat.completion body as a real upstream writes it, with odd formatting on purpose
/// (spaces, escapes, `1.50`) so byte-for-byte pass-through is observable.
pub const UPSTREAM_COMPLETION: &str = r#"{"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1741569952, "model": "m-2025-01-01", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Caf\u00e9 \"quoted\" 1.50", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}, "service_tier": "default", "system_fingerprint": "fp_abc", "weird_number": 1.50}"#;

/// SSE frames of a streamed completion as OpenAI writes them (with `stream_options.include_usage`).
pub fn upstream_stream_frames(with_usage: bool) -> Vec<String> {
    let mut frames: Vec<String> = [
        r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1694268190,"model":"m-2025-01-01","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1694268190,"model":"m-2025-01-01","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1694268190,"model":"m-2025-01-01","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"lo \u00e9"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1694268190,"model":"m-2025-01-01","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
    ]
    .iter()
    .map(|d| format!("data: {d}\n\n"))
    .collect();
    if with_usage {
        frames.push("data: {\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"m-2025-01-01\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n".into());
    }
    frames.push("data: [DONE]\n\n".into());
    frames
}

/// `[{"role": "user", "content": "hi"}]`: the smallest chat.
pub fn hi() -> serde_json::Value {
    serde_json::json!([{"role": "user", "content": "hi"}])
}

/// The body of `GET url`, as text.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// POSTs `body` to `/v1/chat/completions` of the router whose client API is at `api` (base URL)
/// with `key`.
pub async fn post_chat(
    client: &reqwest::Client,
    api: &str,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    client
        .post(format!("{api}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `GET url` with `key`.
pub async fn get_as(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    key: &str,
) -> reqwest::Response {
    client.get(url).bearer_auth(key).send().await.unwrap()
}

/// `GET /api/v1/key` with `key` on the router whose client API is at `api`: its `data`.
pub async fn key_info(client: &reqwest::Client, api: &str, key: &str) -> serde_json::Value {
    let v: serde_json::Value = get_as(client, format!("{api}/api/v1/key"), key)
        .await
        .json()
        .await
        .unwrap();
    v["data"].clone()
}

/// Whether any request the `upstreams` received carried `field` in its body.
pub fn field_reached(upstreams: &[&MockUpstream], field: &str) -> bool {
    upstreams
        .iter()
        .flat_map(|u| u.received())
        .any(|r| r.body.get(field).is_some())
}

/// The status and body of an error response, asserting the error envelope: OpenAI's `message`
/// and `type` strings and a `param`, OpenRouter's `code` (the HTTP status), and Switchboard's
/// reason in `metadata.error_code`.
pub async fn error_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.expect("error bodies are JSON");
    for field in ["message", "type"] {
        assert!(
            v["error"][field].is_string(),
            "error.{field} missing in {v}"
        );
    }
    assert_eq!(
        v["error"]["code"], status,
        "error.code is the status in {v}"
    );
    assert!(
        v["error"]["metadata"]["error_code"].is_string(),
        "error.metadata.error_code missing in {v}"
    );
    assert!(
        v["error"].get("param").is_some(),
        "error.param missing in {v}"
    );
    (status, v)
}

/// A free local TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An OTLP/HTTP trace collector: `(endpoint, spans received)`. Decodes the protobuf export with
/// `opentelemetry-proto`, as a real collector would.
pub async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        sink.lock().unwrap().extend(ss.spans);
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

/// No ejection: the failures a test causes stay failures of their own requests.
pub fn settings_without_ejection() -> Settings {
    Settings {
        health: switchboard_router::routing::health::HealthPolicy {
            consecutive_failures: 1_000_000,
            ..switchboard_router::routing::health::HealthPolicy::default()
        },
        ..Settings::default()
    }
}

/// The value of `switchboard_usage_records_total{stage}` in a metrics page.
pub fn usage_stage(metrics: &str, stage: &str) -> u64 {
    let prefix = format!("switchboard_usage_records_total{{stage=\"{stage}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}
