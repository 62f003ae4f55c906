//! Every JSON body and SSE stream the router emits validates against the official SDKs' own
//! models (`tests/sdk/sdk_validate.py`: pydantic `model_validate`, strict where the models are
//! strict; the OpenRouter SDK's own unmarshalling path, which is what it runs on every response):
//!
//! - every golden answer of the translations (`router/tests/golden/`): chat completions and their
//!   chunks from each provider, Responses objects and event streams, Anthropic messages;
//! - live answers of a router over the mock upstreams: chat (passed through from an
//!   OpenAI-compatible server, and translated), Responses (passed through and translated, streamed
//!   and not, tool calls included), stored responses and their input items, legacy completions,
//!   and error bodies (401, 400, 402, 404), each against both OpenAI's and OpenRouter's reading;
//! - the failure events the relays write when a stream breaks mid-way.
//!
//! One documented exception: a chat stream that fails after its first byte ends with a chunk
//! whose `finish_reason` is `"error"` (OpenRouter's convention, which its SDK models); OpenAI's
//! `Literal` has no such value, so those chunks are checked against OpenRouter's model only (the
//! OpenAI SDK builds chunks without validating, so its clients still read them).

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use switchboard_e2e::{
    tools::{Tool, optional},
    upstreams::Upstream,
};
use switchboard_router::{
    pricing::{Usage, reported::UsageBounds},
    providers::native::SseEvent,
    server,
    state::Settings,
    streaming::{chat::StreamRelay, relay::Relay, responses::ResponsesRelay},
};

const KEY: &str = "sk-sb-schema-test-0123456789";
const UPSTREAM_KEY: &str = "sk-upstream-schema-0123456789";

/// One body to validate, as which kinds (`+`-joined).
struct Sample {
    kinds: &'static str,
    name: String,
    body: String,
}

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// JSON lines (chunks, `[DONE]`) as an SSE body.
fn jsonl_to_sse(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("data: {l}\n\n"))
        .collect()
}

fn goldens() -> Vec<Sample> {
    let mut out = Vec::new();
    for provider in ["anthropic", "gemini", "bedrock"] {
        out.push(Sample {
            kinds: "openai-chat+openrouter-chat",
            name: format!("golden/{provider}/response"),
            body: read(&format!(
                "router/tests/golden/{provider}/response.expected.json"
            )),
        });
        out.push(Sample {
            kinds: "openai-chat-sse+openrouter-chat-sse",
            name: format!("golden/{provider}/stream"),
            body: jsonl_to_sse(&read(&format!(
                "router/tests/golden/{provider}/stream.expected.jsonl"
            ))),
        });
    }
    let dir = repo("router/tests/golden/responses");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names {
        let kinds =
            if name.ends_with(".response.expected.json") || name == "tool-calls.expected.json" {
                "openai-response"
            } else if name.ends_with(".stream.expected.sse") {
                "openai-responses-sse"
            } else {
                continue;
            };
        out.push(Sample {
            kinds,
            name: format!("golden/responses/{name}"),
            body: std::fs::read_to_string(dir.join(&name)).unwrap(),
        });
    }
    out.push(Sample {
        kinds: "anthropic-message",
        name: "golden/messages/response".into(),
        body: read("router/tests/golden/messages/response.expected.json"),
    });
    out.push(Sample {
        kinds: "anthropic-sse",
        name: "golden/messages/stream".into(),
        body: read("router/tests/golden/messages/stream.expected.sse"),
    });
    out
}

fn manifests(upstream: &Upstream) -> String {
    let url = upstream.url();
    let provider = |name: &str, kind: &str, model: &str| {
        format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n  baseURL: {url}\n  credentials: {{secretRef: {{name: s, key: up}}}}\n  models: [{{name: {model}, pricing: {{inputUSDPerMillion: \"2\", outputUSDPerMillion: \"8\"}}}}]\n"
        )
    };
    let route = |name: &str, model: &str, provider: &str, upstream_model: &str| {
        format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {name}}}\nspec: {{model: {model}, targets: [{{provider: {provider}, model: {upstream_model}}}]}}\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{up: {UPSTREAM_KEY}, key: {KEY}}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: k}}\nspec: {{secretRef: {{name: s, key: key}}}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: tiny}}\nspec: {{limitUSD: \"0.000001\", window: monthly, scope: {{models: [tiny/claude]}}}}\n{}{}{}{}{}{}{}",
        provider("compat", "openaiCompatible", "m"),
        provider("oai", "openai", "gpt-x"),
        provider("claude", "anthropic", "claude-x"),
        route("compat", "compat/chat", "compat", "m"),
        route("native", "openai/gpt", "oai", "gpt-x"),
        route("translated", "anthropic/claude", "claude", "claude-x"),
        route("tiny", "tiny/claude", "claude", "claude-x"),
    )
}

/// Codex's default request shape, asking for a shell call.
fn codex(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "store": false, "reasoning": {"effort": "low"},
        "include": ["reasoning.encrypted_content"],
        "input": [
            {"type": "additional_tools", "role": "developer", "tools": [
                {"type": "namespace", "name": "functions", "description": "", "tools": [
                    {"type": "custom", "name": "exec", "description": "Run JavaScript"}]}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Run the shell command: echo hi"}]}],
        "tools": [{"type": "web_search", "external_web_access": false}]})
}

async fn live() -> Vec<Sample> {
    let upstream = Upstream::start(UPSTREAM_KEY).await;
    let path =
        std::env::temp_dir().join(format!("switchboard-schemas-{}.yaml", std::process::id()));
    std::fs::write(&path, manifests(&upstream)).unwrap();
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
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let weather = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let chat = |model: &str, stream: bool, text: &str, tools: bool| {
        let mut b = json!({"model": model, "stream": stream,
                           "messages": [{"role": "user", "content": text}]});
        if stream {
            b["stream_options"] = json!({"include_usage": true});
        }
        if tools {
            b["tools"] = weather.clone();
        }
        b
    };
    let requests: Vec<(&'static str, String, &str, &str, Value, u16)> = vec![
        (
            "openai-chat+openrouter-chat",
            "chat/compat".into(),
            "/v1/chat/completions",
            KEY,
            chat("compat/chat", false, "hi", false),
            200,
        ),
        (
            "openai-chat-sse+openrouter-chat-sse",
            "chat/compat/stream".into(),
            "/v1/chat/completions",
            KEY,
            chat("compat/chat", true, "hi", false),
            200,
        ),
        (
            "openai-chat+openrouter-chat",
            "chat/compat/tools".into(),
            "/v1/chat/completions",
            KEY,
            chat("compat/chat", false, "weather?", true),
            200,
        ),
        (
            "openai-chat-sse+openrouter-chat-sse",
            "chat/compat/tools/stream".into(),
            "/v1/chat/completions",
            KEY,
            chat("compat/chat", true, "weather?", true),
            200,
        ),
        (
            "openai-chat+openrouter-chat",
            "chat/anthropic".into(),
            "/api/v1/chat/completions",
            KEY,
            chat("anthropic/claude", false, "weather?", true),
            200,
        ),
        (
            "openai-chat-sse+openrouter-chat-sse",
            "chat/anthropic/stream".into(),
            "/api/v1/chat/completions",
            KEY,
            chat("anthropic/claude", true, "hi", false),
            200,
        ),
        (
            "openai-response",
            "responses/native".into(),
            "/v1/responses",
            KEY,
            json!({"model": "openai/gpt", "input": "hi"}),
            200,
        ),
        (
            "openai-responses-sse",
            "responses/native/stream".into(),
            "/v1/responses",
            KEY,
            codex("openai/gpt", true),
            200,
        ),
        (
            "openai-response",
            "responses/translated".into(),
            "/v1/responses",
            KEY,
            json!({"model": "anthropic/claude", "input": "hi", "instructions": "Be brief."}),
            200,
        ),
        (
            "openai-responses-sse",
            "responses/translated/stream".into(),
            "/v1/responses",
            KEY,
            codex("anthropic/claude", true),
            200,
        ),
        (
            "openai-response",
            "responses/translated/tools".into(),
            "/v1/responses",
            KEY,
            codex("anthropic/claude", false),
            200,
        ),
        (
            "openai-completion",
            "completions".into(),
            "/v1/completions",
            KEY,
            json!({"model": "anthropic/claude", "prompt": "Say hi"}),
            200,
        ),
        (
            "openai-completion-sse",
            "completions/stream".into(),
            "/v1/completions",
            KEY,
            json!({"model": "anthropic/claude", "prompt": "Say hi", "stream": true}),
            200,
        ),
        (
            "openrouter-error:401+openai-error",
            "error/401".into(),
            "/api/v1/chat/completions",
            "sk-sb-wrong-key-0000000000",
            chat("compat/chat", false, "hi", false),
            401,
        ),
        (
            "openrouter-error:404+openai-error",
            "error/404".into(),
            "/v1/chat/completions",
            KEY,
            chat("no/such", false, "hi", false),
            404,
        ),
        (
            "openrouter-error:400+openai-error",
            "error/400".into(),
            "/v1/chat/completions",
            KEY,
            json!({"model": "compat/chat"}),
            400,
        ),
        (
            "openrouter-error:400+openai-error",
            "error/400/responses".into(),
            "/v1/responses",
            KEY,
            json!({"model": "openai/gpt"}),
            400,
        ),
        (
            "openrouter-error:402+openai-error",
            "error/402".into(),
            "/v1/responses",
            KEY,
            json!({"model": "tiny/claude", "input": "hi"}),
            402,
        ),
        (
            "openrouter-error:404+openai-error",
            "error/404/endpoint".into(),
            "/v1/no/such/endpoint",
            KEY,
            json!({}),
            404,
        ),
    ];
    let mut stored = None;
    for (kinds, name, path, key, body, status) in requests {
        let resp = http
            .post(format!("{api}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let text = resp.text().await.unwrap();
        if name == "responses/translated" {
            stored = serde_json::from_str::<Value>(&text).unwrap()["id"]
                .as_str()
                .map(str::to_string);
        }
        out.push(Sample {
            kinds,
            name,
            body: text,
        });
    }
    let id = stored.expect("a stored response id");
    for (kinds, suffix) in [
        ("openai-response", ""),
        ("openai-response-items", "/input_items"),
    ] {
        let url = format!("{api}/v1/responses/{id}{suffix}");
        let mut body = String::new();
        for _ in 0..50 {
            let resp = http.get(&url).bearer_auth(KEY).send().await.unwrap();
            if resp.status() == 200 {
                body = resp.text().await.unwrap();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!body.is_empty(), "{url} never answered");
        out.push(Sample {
            kinds,
            name: format!("responses/stored{suffix}"),
            body,
        });
    }
    drop(router);
    out
}

fn text(frames: Vec<axum::body::Bytes>) -> String {
    frames
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

/// Bounds for the relays below: the cut streams are billed within them.
fn bounds() -> UsageBounds {
    UsageBounds {
        prompt: Some(1000),
        completion: 100,
        cap_nanos: 1_000_000_000,
        worst: Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            ..Usage::default()
        },
    }
}

/// The failure events the relays write when a stream breaks after its first byte.
fn failures() -> Vec<Sample> {
    let mut chat = StreamRelay::new("p", Default::default(), bounds(), 3, "m");
    let mut out = Vec::new();
    chat.on_data(
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        &mut out,
    );
    chat.on_eof(&mut out);
    let mut responses = ResponsesRelay::new("p", Default::default(), bounds(), 3, "m");
    let mut events = Vec::new();
    for data in [
        r#"{"type":"response.created","response":{"id":"resp_1","object":"response","created_at":1,"model":"m","output":[],"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"status":"in_progress"},"sequence_number":0}"#,
        r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[],"sequence_number":1}"#,
    ] {
        responses.on_item(
            SseEvent {
                event: String::new(),
                data: data.into(),
            },
            &mut events,
        );
    }
    events.clear();
    responses.on_eof(&mut events);
    let failed = text(events);
    let data = failed
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .to_string();
    vec![
        Sample {
            kinds: "openrouter-chat-sse",
            name: "failure/chat-error-chunk".into(),
            body: text(out) + "data: [DONE]\n\n",
        },
        Sample {
            kinds: "openai-response-event",
            name: "failure/response.failed".into(),
            body: data,
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_validates_against_the_official_sdk_models() {
    let Some(python) = optional(Tool::Python, "SDK schema validation") else {
        return;
    };
    let mut samples = goldens();
    samples.extend(live().await);
    samples.extend(failures());
    let dir =
        std::env::temp_dir().join(format!("switchboard-schema-samples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list: Vec<Value> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let file = dir.join(format!("{i:02}-{}", s.name.replace('/', "_")));
            std::fs::write(&file, &s.body).unwrap();
            json!([s.kinds, file])
        })
        .collect();
    let list_file = dir.join("list.json");
    std::fs::write(&list_file, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = tokio::process::Command::new(&python)
        .arg(repo("tests/sdk/sdk_validate.py"))
        .arg("--batch")
        .arg(&list_file)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "some answers do not validate:\n{stdout}{stderr}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("OK ")).count(),
        samples.len(),
        "{stdout}"
    );
}
