//! Money under a hostile upstream (issue 16): every adapter's usage — OpenAI-compatible, Azure,
//! Anthropic, Gemini, Vertex (both publishers), Bedrock — reported as a huge, negative,
//! fractional, string or missing count is billed at the request's worst case, never above it,
//! with the client told what was billed and why, the generation record marked and
//! `switchboard_usage_anomalies_total` counted; the built-in mock's usage passes as reported. A
//! counter overflow cannot unlimit a budget, `n` is reserved, and usage above the worst case is
//! settled at the worst case.

mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::Uri,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use support::{CLIENT_KEY, TestRouter, get_as};

/// What the scripted upstream reports as usage: prompt and completion counts as JSON values, or
/// no usage at all.
#[derive(Clone, Debug)]
enum Report {
    Counts(Value, Value),
    Missing,
}

/// The upstream's answer text: 3 tokens at 4 characters a token.
const TEXT: &str = "hello world!";

#[derive(Clone)]
struct Script(Arc<Mutex<Report>>);

impl Script {
    fn set(&self, r: Report) {
        *self.0.lock().unwrap() = r;
    }
    fn get(&self) -> Report {
        self.0.lock().unwrap().clone()
    }
}

/// One upstream that speaks every wire format, told apart by path: Vertex's token endpoint,
/// Anthropic (`/messages`, Vertex `rawPredict`), Gemini (`generateContent`), Bedrock
/// (`/converse`), else OpenAI Chat Completions (OpenAI-compatible and Azure).
async fn upstream(script: Script) -> SocketAddr {
    let app = Router::new().fallback(answer).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

fn sse_response(events: Vec<(Option<&str>, Value)>, done: bool) -> Response {
    let mut text = String::new();
    for (event, data) in events {
        if let Some(e) = event {
            text.push_str(&format!("event: {e}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    ([("content-type", "text/event-stream")], text).into_response()
}

async fn answer(State(script): State<Script>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/token") {
        return json_response(
            json!({"access_token": "ya29.mock", "expires_in": 3599, "token_type": "Bearer"}),
        );
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = request["stream"] == json!(true)
        || path.contains("streamRawPredict")
        || path.contains("streamGenerateContent");
    let report = script.get();
    let counts = |p: &str, c: &str| match &report {
        Report::Counts(prompt, completion) => Some(json!({p: prompt, c: completion})),
        Report::Missing => None,
    };
    if path.ends_with("/messages") || path.contains("awPredict") {
        let usage = counts("input_tokens", "output_tokens");
        return anthropic(usage, stream);
    }
    if path.contains("enerateContent") {
        let usage = counts("promptTokenCount", "candidatesTokenCount");
        return gemini(usage, stream);
    }
    if path.contains("/converse") {
        let mut v = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}},
            "stopReason": "end_turn", "metrics": {"latencyMs": 5}
        });
        if let Some(u) = counts("inputTokens", "outputTokens") {
            v["usage"] = u;
        }
        return json_response(v);
    }
    // OpenAI Chat Completions; `n` honoured: one choice each.
    let n = request["n"].as_u64().unwrap_or(1);
    let usage = counts("prompt_tokens", "completion_tokens");
    if stream {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![
            (None, chunk(json!({"content": TEXT}), Value::Null)),
            (None, chunk(json!({}), json!("stop"))),
        ];
        if let Some(u) = usage {
            events.push((
                None,
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                       "model": "m", "choices": [], "usage": u}),
            ));
        }
        return sse_response(events, true);
    }
    let choices: Vec<Value> = (0..n)
        .map(|i| json!({"index": i, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}))
        .collect();
    let mut v = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": choices});
    if let Some(u) = usage {
        v["usage"] = u;
    }
    json_response(v)
}

fn anthropic(usage: Option<Value>, stream: bool) -> Response {
    if !stream {
        let mut v = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn", "stop_sequence": null
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        return json_response(v);
    }
    // Input tokens open the stream, output tokens close it.
    let (start_usage, delta_usage) = match usage {
        Some(u) => (
            json!({"input_tokens": u["input_tokens"], "output_tokens": 1}),
            json!({"output_tokens": u["output_tokens"]}),
        ),
        None => (json!({}), json!({})),
    };
    sse_response(
        vec![
            (
                Some("message_start"),
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                    "role": "assistant", "model": "claude", "content": [], "stop_reason": null,
                    "usage": start_usage}}),
            ),
            (
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
            (
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": TEXT}}),
            ),
            (
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                Some("message_delta"),
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": delta_usage}),
            ),
            (Some("message_stop"), json!({"type": "message_stop"})),
        ],
        false,
    )
}

fn gemini(usage: Option<Value>, stream: bool) -> Response {
    let mut last = json!({
        "candidates": [{"content": {"parts": [{"text": if stream { "" } else { TEXT }}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "responseId": "r1", "modelVersion": "gemini-x"
    });
    if let Some(u) = usage {
        last["usageMetadata"] = u;
    }
    if !stream {
        return json_response(last);
    }
    let first = json!({
        "candidates": [{"content": {"parts": [{"text": TEXT}], "role": "model"}, "index": 0}],
        "responseId": "r1", "modelVersion": "gemini-x"
    });
    sse_response(vec![(None, first), (None, last)], false)
}

const PRICING: &str = r#"{inputUSDPerMillion: "1", outputUSDPerMillion: "2"}"#;

fn vertex_key(token_uri: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vertex-service-account.json"
    );
    let key = std::fs::read_to_string(path)
        .unwrap()
        .replace("TOKEN_URI", token_uri);
    serde_json::from_str::<Value>(&key).unwrap().to_string()
}

/// Every adapter behind the one scripted upstream, each as `<name>/chat`; a budget of `budget`
/// USD on the client key.
fn manifest(up: &str, budget: &str) -> String {
    let secrets = json!({
        "key": "sk-provider-0123456789abcdef",
        "aws": r#"{"accessKeyId": "AKIDMOCK", "secretAccessKey": "mock-secret-access-key"}"#,
        "sa": vertex_key(&format!("{up}/token")),
    });
    let mut m = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: upstream}}\nstringData: {secrets}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: clients}}\nstringData: {{key: {CLIENT_KEY}}}\n---\n\
         apiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: client}}\nspec: {{secretRef: {{name: clients, key: key}}}}\n---\n\
         apiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: b}}\nspec: {{limitUSD: \"{budget}\", window: total, scope: {{apiKeys: [client]}}}}\n"
    );
    for (name, ty, base, cred, extra, model) in [
        (
            "openai",
            "openaiCompatible",
            format!("{up}/v1"),
            "key",
            "",
            "gpt-x",
        ),
        (
            "azure",
            "azureOpenAI",
            up.to_string(),
            "key",
            "  azure: {apiVersion: 2024-10-21}\n",
            "gpt-deploy",
        ),
        (
            "anthropic",
            "anthropic",
            format!("{up}/v1"),
            "key",
            "",
            "claude-x",
        ),
        (
            "gemini",
            "gemini",
            format!("{up}/v1beta"),
            "key",
            "",
            "gemini-x",
        ),
        (
            "vertex",
            "vertex",
            format!("{up}/v1"),
            "sa",
            "  vertex: {project: p1, location: us-east5}\n",
            "gemini-v",
        ),
        (
            "vertexclaude",
            "vertex",
            format!("{up}/v1"),
            "sa",
            "  vertex: {project: p1, location: us-east5}\n",
            "claude-v",
        ),
        (
            "bedrock",
            "bedrock",
            up.to_string(),
            "aws",
            "  bedrock: {region: us-east-1}\n",
            "anthropic.claude-x-v1:0",
        ),
    ] {
        m.push_str(&format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {name}}}\nspec:\n  type: {ty}\n  baseURL: {base}\n  credentials: {{secretRef: {{name: upstream, key: {cred}}}}}\n  timeouts: {{total: 10s}}\n{extra}  models: [{{name: {model}, pricing: {PRICING}}}]\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {name}}}\nspec: {{model: {name}/chat, targets: [{{provider: {name}, model: {model}}}]}}\n"
        ));
    }
    m.push_str(&format!(
        "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: mock}}\nspec: {{type: mock, models: [{{name: m, pricing: {PRICING}}}]}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: mock}}\nspec: {{model: mock/chat, targets: [{{provider: mock, model: m}}]}}\n"
    ));
    m
}

struct World {
    script: Script,
    router: TestRouter,
}

impl World {
    async fn start(budget: &str) -> World {
        let script = Script(Arc::new(Mutex::new(Report::Missing)));
        let addr = upstream(script.clone()).await;
        let router = TestRouter::start(&manifest(&format!("http://{addr}"), budget)).await;
        World { script, router }
    }

    /// A chat of `hi` (32 prompt bytes) with `max_tokens: 10` and `extra` fields: worst case
    /// 32 × $1/M + 10 × $2/M = $0.000052.
    async fn chat(&self, model: &str, stream: bool, extra: Value) -> (Value, String) {
        let mut body =
            json!({"model": model, "messages": support::hi(), "max_tokens": 10, "stream": stream});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = self.router.chat(body).await;
        assert_eq!(resp.status(), 200, "{model}");
        let id = resp.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let text = resp.text().await.unwrap();
        let usage = if stream {
            let usage_chunks: Vec<Value> = text
                .split("\n\n")
                .filter_map(|f| f.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str::<Value>(d).unwrap())
                .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
                .collect();
            assert_eq!(usage_chunks.len(), 1, "one usage chunk: {text}");
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            usage_chunks[0]["usage"].clone()
        } else {
            serde_json::from_str::<Value>(&text).unwrap()["usage"].clone()
        };
        (usage, id)
    }

    /// An Anthropic Messages request of `hi` with `max_tokens: 10` to the Anthropic target,
    /// passed through natively: the `usage` the client is told (the last `message_delta`'s when
    /// streamed) and the generation id.
    async fn messages(&self, stream: bool) -> (Value, String) {
        let body = json!({"model": "anthropic/chat", "max_tokens": 10, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]});
        let resp = self
            .router
            .http
            .post(self.router.url("/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let text = resp.text().await.unwrap();
        if !stream {
            return (
                serde_json::from_str::<Value>(&text).unwrap()["usage"].clone(),
                id,
            );
        }
        let deltas: Vec<Value> = text
            .split("\n\n")
            .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter(|e| e["type"] == "message_delta")
            .collect();
        assert_eq!(deltas.len(), 1, "one message_delta: {text}");
        assert!(
            text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{text}"
        );
        (deltas[0]["usage"].clone(), id)
    }

    async fn generation(&self, id: &str) -> Value {
        let v: Value = get_as(
            &self.router.http,
            self.router.url(&format!("/api/v1/generation?id={id}")),
            CLIENT_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
        v["data"].clone()
    }

    /// The budget's settled spend once nothing is reserved.
    async fn spent(&self) -> String {
        for _ in 0..200 {
            let data = self.router.key_info(CLIENT_KEY).await;
            let b = &data["budgets"][0];
            if b["reserved_usd"] == "0" {
                return b["spent_usd"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a reservation was never settled");
    }
}

fn hostile() -> Vec<(&'static str, Report)> {
    let u64_max: Value = serde_json::from_str("18446744073709551615").unwrap();
    vec![
        ("too_large", Report::Counts(json!(5), u64_max)),
        ("too_large", Report::Counts(json!(5), json!(1e30))),
        ("negative", Report::Counts(json!(5), json!(-5))),
        ("fractional", Report::Counts(json!(5), json!(2.5))),
        ("not_a_number", Report::Counts(json!(5), json!("7"))),
        ("missing", Report::Missing),
    ]
}

const ADAPTERS: [&str; 7] = [
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "vertex",
    "vertexclaude",
    "bedrock",
];

/// Streams through the adapters whose wire format is SSE in the scripted upstream.
const STREAMING: [&str; 5] = ["openai", "azure", "anthropic", "gemini", "vertex"];

#[tokio::test(flavor = "multi_thread")]
async fn every_adapter_bills_unusable_usage_at_the_worst_case_and_says_so() {
    let w = World::start("100").await;
    let mut billed = 0u32;
    for (kind, report) in hostile() {
        w.script.set(report.clone());
        for adapter in ADAPTERS {
            for stream in [false, true] {
                if stream && !STREAMING.contains(&adapter) {
                    continue;
                }
                let at = format!("{adapter} stream={stream} {report:?}");
                let (usage, id) = w.chat(&format!("{adapter}/chat"), stream, json!({})).await;
                billed += 52;
                assert_eq!(usage["cost"], json!(0.000052), "{at}: {usage}");
                assert_eq!(usage["prompt_tokens"], 32, "{at}: {usage}");
                assert_eq!(usage["completion_tokens"], 10, "{at}: {usage}");
                let reason = usage["clamped"]["reason"].as_str().unwrap_or_default();
                assert!(reason.ends_with(kind), "{at}: {usage}");
                let g = w.generation(&id).await;
                assert_eq!(g["usage_anomaly"], json!(reason), "{at}: {g}");
                assert_eq!(g["total_cost"], "0.000052", "{at}: {g}");
            }
        }
    }
    // Every one settled at exactly its worst case.
    assert_eq!(
        w.spent().await,
        rust_decimal::Decimal::new(i64::from(billed), 6)
            .normalize()
            .to_string()
    );
    let metrics = w.router.metrics().await;
    for adapter in ADAPTERS {
        assert!(
            metrics.contains(&format!(
                "switchboard_usage_anomalies_total{{kind=\"negative\",provider=\"{adapter}\"}}"
            )),
            "{adapter}: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_within_the_bounds_is_billed_as_reported_on_every_adapter() {
    let w = World::start("100").await;
    w.script.set(Report::Counts(json!(20), json!(3)));
    for adapter in ADAPTERS {
        let (usage, id) = w.chat(&format!("{adapter}/chat"), false, json!({})).await;
        // 20 × $1/M + 3 × $2/M.
        assert_eq!(usage["cost"], json!(0.000026), "{adapter}: {usage}");
        assert!(usage.get("clamped").is_none(), "{adapter}: {usage}");
        assert_eq!(w.generation(&id).await["usage_anomaly"], Value::Null);
    }
    // The built-in mock reports honest usage: "echo: hi" is 2 tokens, the prompt 1.
    let (usage, _) = w.chat("mock/chat", false, json!({})).await;
    assert_eq!(usage["cost"], json!(0.000005), "{usage}");
    assert!(usage.get("clamped").is_none());
    let (usage, _) = w.chat("mock/chat", true, json!({})).await;
    assert_eq!(usage["cost"], json!(0.000005), "{usage}");
}

/// #16.1: `u64::MAX` tokens each on a `max_tokens: 5` request told the client
/// $202,914,184,810,805 and saturated the ledger, after which a request on a budget with $0 left
/// was admitted and the budget's spend wrapped negative.
#[tokio::test(flavor = "multi_thread")]
async fn an_overflowing_usage_report_cannot_unlimit_a_budget() {
    let w = World::start("0.0001").await;
    let u64_max: Value = serde_json::from_str("18446744073709551615").unwrap();
    w.script.set(Report::Counts(u64_max.clone(), u64_max));
    let (usage, _) = w.chat("openai/chat", false, json!({"max_tokens": 5})).await;
    // 32 + 5 × 2 = 42 micro-dollars: the worst case, not $202 trillion.
    assert_eq!(usage["cost"], json!(0.000042), "{usage}");
    assert_eq!(w.spent().await, "0.000042");
    // $0.000058 left: a request whose worst case is larger is refused, however large.
    for max_tokens in [100_000_000u64, 1 << 40] {
        let resp = w
            .router
            .chat(json!({"model": "openai/chat", "messages": support::hi(), "max_tokens": max_tokens}))
            .await;
        assert_eq!(resp.status(), 402, "max_tokens {max_tokens}");
    }
    // Absurd enough that no ledger can count the worst case: 400 naming max_tokens.
    let resp = w
        .router
        .chat(json!({"model": "openai/chat", "messages": support::hi(), "max_tokens": u64::MAX}))
        .await;
    let (status, err) = support::error_of(resp).await;
    assert_eq!(
        (status, err["error"]["param"].as_str()),
        (400, Some("max_tokens"))
    );
    let key = w.router.key_info(CLIENT_KEY).await;
    assert_eq!(key["usage"], json!(0.000042), "{key}");
    assert_eq!(key["budgets"][0]["remaining_usd"], "0.000058", "{key}");
}

/// #16.3: `{"max_tokens": 100, "n": 100}` reserved 100 tokens, and an upstream honouring `n`
/// took a $0.001 budget to $0.1.
#[tokio::test(flavor = "multi_thread")]
async fn every_choice_is_reserved_and_usage_above_the_worst_case_is_settled_at_it() {
    let w = World::start("0.001").await;
    // 100 × 100 output tokens at $2/M = $0.02 > $0.001: refused up front.
    let resp = w
        .router
        .chat(
            json!({"model": "openai/chat", "messages": support::hi(), "max_tokens": 100, "n": 100}),
        )
        .await;
    assert_eq!(resp.status(), 402);
    // n = 3 fits (32 + 3 × 10 × 2 = 92 micro-dollars); the upstream honours it: 30 tokens.
    w.script.set(Report::Counts(json!(20), json!(30)));
    let (usage, _) = w.chat("openai/chat", false, json!({"n": 3})).await;
    assert_eq!(usage["cost"], json!(0.00008), "billed as reported: {usage}");
    assert!(usage.get("clamped").is_none());
    // max_tokens 5, the upstream reports a million tokens: $2 before, the worst case now.
    w.script.set(Report::Counts(json!(20), json!(1_000_000)));
    let (usage, _) = w.chat("openai/chat", false, json!({"max_tokens": 5})).await;
    assert_eq!(usage["cost"], json!(0.000042), "{usage}");
    assert_eq!(
        usage["clamped"]["reason"], "completion_tokens too_large",
        "{usage}"
    );
    assert_eq!(w.spent().await, "0.000122");
}

/// The invariant of docs/budgets.md: whatever the upstream reports, a block budget's settled
/// spend never exceeds its limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_block_budget_never_ends_above_its_limit_whatever_upstreams_report() {
    let w = World::start("0.0005").await;
    let reports = hostile()
        .into_iter()
        .map(|(_, r)| r)
        .chain([Report::Counts(json!(1), json!(1_000_000_000))]);
    let mut admitted = 0;
    for (i, report) in reports.cycle().take(40).enumerate() {
        w.script.set(report);
        let adapter = ADAPTERS[i % ADAPTERS.len()];
        let resp = w
            .router
            .chat(json!({"model": format!("{adapter}/chat"), "messages": support::hi(), "max_tokens": 10}))
            .await;
        match resp.status().as_u16() {
            200 => admitted += 1,
            402 => {}
            s => panic!("{adapter}: status {s}"),
        }
        let _ = resp.bytes().await;
    }
    let spent: rust_decimal::Decimal = w.spent().await.parse().unwrap();
    assert!(spent <= "0.0005".parse().unwrap(), "spent {spent}");
    assert!(
        admitted >= 9,
        "each worst case ($0.000052) fits 9 times: {admitted}"
    );
}

/// Answers passed through natively (an Anthropic Messages client, an Anthropic target) are checked
/// like every adapter's: unusable usage, complete or streamed, is billed at the worst case, told
/// in Anthropic's usage fields with `clamped`, marked on the generation record, and what the
/// ledger settles is exactly what the client was told.
#[tokio::test(flavor = "multi_thread")]
async fn native_anthropic_answers_bill_unusable_usage_at_the_worst_case_and_say_so() {
    let w = World::start("100").await;
    let mut told = rust_decimal::Decimal::ZERO;
    let mut worst = None;
    for (kind, report) in hostile() {
        w.script.set(report.clone());
        for stream in [false, true] {
            let at = format!("stream={stream} {report:?}");
            let (usage, id) = w.messages(stream).await;
            let reason = usage["clamped"]["reason"].as_str().unwrap_or_default();
            assert!(reason.ends_with(kind), "{at}: {usage}");
            assert_eq!(usage["output_tokens"], 10, "{at}: {usage}");
            let cost = usage["cost"].as_f64().unwrap();
            // Always the same worst case, whatever was reported.
            assert_eq!(*worst.get_or_insert(cost), cost, "{at}: {usage}");
            let g = w.generation(&id).await;
            assert_eq!(g["usage_anomaly"], json!(reason), "{at}: {g}");
            let recorded: rust_decimal::Decimal =
                g["total_cost"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                recorded.to_string().parse::<f64>().unwrap(),
                cost,
                "{at}: {g}"
            );
            told += recorded;
        }
    }
    assert!(worst.is_some_and(|c| c > 0.0));
    assert_eq!(w.spent().await, told.normalize().to_string());
    // Honest usage passes as reported: 20 × $1/M + 3 × $2/M.
    w.script.set(Report::Counts(json!(20), json!(3)));
    for stream in [false, true] {
        let (usage, _) = w.messages(stream).await;
        assert_eq!(usage["cost"], json!(0.000026), "stream={stream}: {usage}");
        assert!(usage.get("clamped").is_none(), "{usage}");
    }
}
