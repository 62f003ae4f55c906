//! `POST /v1/messages` to targets that speak Messages: the request Claude Code sends (a real
//! capture, `fixtures/claude-code/`) reaches Anthropic, Claude on Vertex AI and Claude on Bedrock
//! as the client sent it — only the model rewritten, the vendor's envelope added — with the
//! client's `anthropic-beta` and `anthropic-version` and never its key; the answer comes back as
//! the upstream sent it, every event named, with `usage.cost` added, and the budget settles
//! exactly what the answers said they cost. A fallback to an OpenAI target answers translated,
//! naming what it left out; a stream cut mid-way ends with an Anthropic `error` event.

#[path = "support/providers.rs"]
mod provider_mocks;
mod support;

use std::{str::FromStr, time::Duration};

use provider_mocks::{PROVIDER_KEY, ProviderMock, Wire};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{CLIENT_KEY, TestRouter};

const PRICING: &str = r#"{inputUSDPerMillion: "5", outputUSDPerMillion: "25", cachedInputUSDPerMillion: "0.5", cacheWriteUSDPerMillion: "6.25"}"#;

struct World {
    anthropic: ProviderMock,
    vertex: ProviderMock,
    bedrock: ProviderMock,
    openai: ProviderMock,
    router: TestRouter,
}

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

fn provider(name: &str, ty: &str, base: &str, key: &str, extra: &str, models: &[&str]) -> String {
    let models: String = models
        .iter()
        .map(|m| format!("    - {{name: {m}, pricing: {PRICING}}}\n"))
        .collect();
    format!(
        "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {name}}}\nspec:\n  type: {ty}\n  baseURL: {base}\n  credentials: {{secretRef: {{name: upstream, key: {key}}}}}\n{extra}  models:\n{models}"
    )
}

fn route(public: &str, targets: &[(&str, &str)]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|(p, m)| format!("{{provider: {p}, model: {m}}}"))
        .collect();
    format!(
        "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {public}}}\nspec: {{model: {public}, targets: [{}]}}\n",
        targets.join(", ")
    )
}

impl World {
    async fn start() -> World {
        let anthropic = ProviderMock::start(Wire::Anthropic).await;
        let vertex = ProviderMock::start(Wire::Gemini).await;
        let bedrock = ProviderMock::start(Wire::Bedrock).await;
        let openai = ProviderMock::start(Wire::OpenAi).await;
        let secrets = json!({
            "key": PROVIDER_KEY,
            "aws": r#"{"accessKeyId": "AKIDMOCK", "secretAccessKey": "mock-secret-access-key"}"#,
            "sa": vertex_key(&format!("{}/token", vertex.url())),
            "client": CLIENT_KEY,
        });
        let mut m = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: upstream}}\nstringData: {secrets}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: client}}\nspec: {{secretRef: {{name: upstream, key: client}}}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: team}}\nspec: {{limitUSD: \"1000\", scope: {{apiKeys: [client]}}}}\n"
        );
        let anthropic_base = format!("{}/v1", anthropic.url());
        m.push_str(&provider(
            "anthropic",
            "anthropic",
            &anthropic_base,
            "key",
            "",
            &["claude-x", "overloaded"],
        ));
        m.push_str(&provider(
            "vertex",
            "vertex",
            &format!("{}/v1", vertex.url()),
            "sa",
            "  vertex: {project: p1, location: us-east5}\n",
            &["claude-v"],
        ));
        m.push_str(&provider(
            "bedrock",
            "bedrock",
            &bedrock.url(),
            "aws",
            "  bedrock: {region: us-east-1}\n",
            &["us.anthropic.claude-x-v1:0"],
        ));
        m.push_str(&provider(
            "openai",
            "openaiCompatible",
            &format!("{}/v1", openai.url()),
            "key",
            "",
            &["m"],
        ));
        m.push_str(&route("claude", &[("anthropic", "claude-x")]));
        m.push_str(&route("oai", &[("openai", "m")]));
        m.push_str(&route("vclaude", &[("vertex", "claude-v")]));
        m.push_str(&route(
            "bclaude",
            &[("bedrock", "us.anthropic.claude-x-v1:0")],
        ));
        m.push_str(&route(
            "fallback",
            &[("anthropic", "overloaded"), ("openai", "m")],
        ));
        let router = TestRouter::start(&m).await;
        World {
            anthropic,
            vertex,
            bedrock,
            openai,
            router,
        }
    }
}

/// The captured Claude Code request (headers and body) for `model`, streamed or not.
fn claude_code(model: &str, stream: bool) -> (Vec<(String, String)>, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/claude-code/tool-call-request.json"
    );
    let capture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut body = capture["body"].clone();
    body["model"] = json!(model);
    body["stream"] = json!(stream);
    let headers = capture["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (headers, body.to_string())
}

async fn send(router: &TestRouter, headers: &[(String, String)], body: &str) -> reqwest::Response {
    let mut req = router
        .http
        .post(router.url("/v1/messages?beta=true"))
        .header("x-api-key", CLIENT_KEY)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

/// `(event line, data)` of each SSE frame; the event line is `None` when missing.
fn frames(text: &str) -> Vec<(Option<String>, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let event = f
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_string);
            let data: String = f.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            (event, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

/// The exact `usage.cost` in a JSON text (the number as written, not through a float).
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

/// The budget's settled spend once no reservation is outstanding.
async fn settled_spend(router: &TestRouter) -> Decimal {
    for _ in 0..100 {
        let info = router.key_info(CLIENT_KEY).await;
        let b = &info["budgets"][0];
        if b["reserved_usd"] == "0" {
            return Decimal::from_str(b["spent_usd"].as_str().unwrap()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("reservations never settled");
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_codes_request_reaches_anthropic_as_sent_and_its_answer_comes_back_priced() {
    let w = World::start().await;
    let (headers, body) = claude_code("claude", true);
    let resp = send(&w.router, &headers, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.headers().get("content-encoding").is_none());
    let text = resp.text().await.unwrap();

    // Upstream: the client's bytes with only the model rewritten, its betas, not its key.
    let seen = w.anthropic.last();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.raw,
        body.replacen("\"model\":\"claude\"", "\"model\":\"claude-x\"", 1)
    );
    let h = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_string());
    let sent = |n: &str| headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(h("anthropic-beta"), Some(sent("anthropic-beta")));
    assert_eq!(h("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(h("x-api-key").as_deref(), Some(PROVIDER_KEY));
    assert_eq!(h("authorization"), None);
    assert!(!seen.raw.contains(CLIENT_KEY));
    assert!(h("accept-encoding").is_none_or(|e| !e.contains("br") && !e.contains("zstd")));
    let b = &seen.body;
    assert_eq!(
        b["thinking"],
        json!({"type": "adaptive", "display": "omitted"})
    );
    assert_eq!(b["output_config"], json!({"effort": "medium"}));
    assert_eq!(
        b["context_management"]["edits"][0]["type"],
        "clear_thinking_20251015"
    );
    assert_eq!(b["messages"][1]["role"], "system");
    assert_eq!(b["max_tokens"], 128000);
    assert!(
        b["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["defer_loading"] == true)
    );

    // Client: the upstream's events, each with its event line; the cost on message_delta.
    let ev = frames(&text);
    assert!(ev.iter().all(|(e, d)| e.as_deref() == d["type"].as_str()));
    let names: Vec<&str> = ev
        .iter()
        .map(|(_, d)| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let delta = ev
        .iter()
        .find(|(_, d)| d["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    // 12 input at 5, 200 cache reads at 0.5, 100 writes at 6.25, 30 out at 25 per million.
    assert_eq!(costs(&text), [Decimal::from_str("0.001535").unwrap()]);

    // Not streamed: the message as it came, with its cost.
    let (_, body) = claude_code("claude", false);
    let resp = send(&w.router, &headers, &body).await;
    assert_eq!(resp.status(), 200);
    let text2 = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text2).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(v["content"][1]["type"], "tool_use");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 200);
    assert_eq!(costs(&text2), [Decimal::from_str("0.001535").unwrap()]);

    // The budget settled exactly what the two answers said they cost.
    let told: Decimal = costs(&text).into_iter().chain(costs(&text2)).sum();
    assert_eq!(settled_spend(&w.router).await, told);
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_on_vertex_and_bedrock_gets_the_request_in_their_envelopes() {
    let w = World::start().await;
    let (headers, body) = claude_code("vclaude", true);
    let text = send(&w.router, &headers, &body).await.text().await.unwrap();
    let seen = w.vertex.last();
    assert_eq!(
        seen.path,
        "/v1/projects/p1/locations/us-east5/publishers/anthropic/models/claude-v:streamRawPredict"
    );
    assert_eq!(seen.body.get("model"), None);
    assert_eq!(seen.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(seen.body["thinking"]["type"], "adaptive");
    assert!(
        seen.headers["anthropic-beta"]
            .to_str()
            .unwrap()
            .contains("effort-2025-11-24")
    );
    assert!(
        frames(&text)
            .iter()
            .any(|(_, d)| d["type"] == "message_delta")
    );
    assert_eq!(costs(&text).len(), 1);

    for stream in [true, false] {
        let (_, body) = claude_code("bclaude", stream);
        let text = send(&w.router, &headers, &body).await.text().await.unwrap();
        let seen = w.bedrock.last();
        let op = if stream {
            "invoke-with-response-stream"
        } else {
            "invoke"
        };
        assert_eq!(
            seen.path,
            format!("/model/us.anthropic.claude-x-v1%3A0/{op}")
        );
        assert_eq!(seen.body.get("model"), None);
        assert_eq!(seen.body.get("stream"), None);
        assert_eq!(seen.body["anthropic_version"], "bedrock-2023-05-31");
        assert!(
            seen.body["anthropic_beta"]
                .as_array()
                .unwrap()
                .contains(&json!("claude-code-20250219"))
        );
        assert!(seen.headers.get("anthropic-beta").is_none());
        if stream {
            let ev = frames(&text);
            assert!(ev.iter().all(|(e, d)| e.as_deref() == d["type"].as_str()));
            assert_eq!(ev.last().unwrap().1["type"], "message_stop");
        } else {
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap()["type"],
                "message"
            );
        }
        assert_eq!(costs(&text).len(), 1, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fallback_to_an_openai_target_answers_translated_and_names_what_it_left_out() {
    let w = World::start().await;
    let (headers, body) = claude_code("fallback", true);
    let resp = send(&w.router, &headers, &body).await;
    assert_eq!(resp.status(), 200);
    let dropped = resp.headers()["x-switchboard-dropped"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(dropped, "context_management");
    let text = resp.text().await.unwrap();
    let ev = frames(&text);
    assert!(ev.iter().all(|(e, d)| e.as_deref() == d["type"].as_str()));
    assert_eq!(ev.last().unwrap().1["type"], "message_stop");
    assert_eq!(costs(&text).len(), 1);
    // The Anthropic target was tried first; the OpenAI one got the chat view.
    assert_eq!(w.anthropic.last().body["model"], "overloaded");
    let sent = w.openai.last().body;
    // The system prompt first, then the conversation with its system message in place.
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "system"]);
    assert_eq!(sent["reasoning_effort"], "medium");
    assert_eq!(sent["max_tokens"], 128000);
    assert!(sent.get("context_management").is_none());
    assert!(
        sent["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["type"] == "function")
    );
    assert!(!w.openai.last().raw.contains("defer_loading"));
}

/// An Anthropic upstream that sends the opening of an answer, then closes the connection.
async fn cut_upstream() -> String {
    use axum::{Router, routing::post};
    let app = Router::new().route(
        "/v1/messages",
        post(|| async {
            let body = [
                r#"{"type":"message_start","message":{"id":"msg_cut","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            ]
            .iter()
            .map(|d| {
                let t: Value = serde_json::from_str(d).unwrap();
                format!("event: {}\ndata: {d}\n\n", t["type"].as_str().unwrap())
            })
            .collect::<String>();
            ([("content-type", "text/event-stream")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_mid_way_ends_with_an_anthropic_error_event() {
    let base = cut_upstream().await;
    let m = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: upstream}}\nstringData: {{key: {PROVIDER_KEY}, client: {CLIENT_KEY}}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: client}}\nspec: {{secretRef: {{name: upstream, key: client}}}}\n{}{}",
        provider("cut", "anthropic", &base, "key", "", &["claude-x"]),
        route("claude", &[("cut", "claude-x")])
    );
    let router = TestRouter::start(&m).await;
    let resp = send(
        &router,
        &[],
        &json!({"model": "claude", "max_tokens": 10, "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]})
        .to_string(),
    )
    .await;
    let ev = frames(&resp.text().await.unwrap());
    let names: Vec<&str> = ev
        .iter()
        .map(|(_, d)| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "message_delta",
            "error"
        ]
    );
    // What was relayed is billed, and the client is told so before the error.
    assert!(
        ev[3].1["usage"]["cost"].as_f64().unwrap() > 0.0,
        "{:?}",
        ev[3]
    );
    assert_eq!(ev[4].0.as_deref(), Some("error"));
    assert_eq!(ev[4].1["error"]["type"], "api_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn count_tokens_is_the_targets_own_count_or_a_marked_estimate() {
    let w = World::start().await;
    let body = json!({"model": "claude", "system": "Be brief.",
        "messages": [{"role": "user", "content": "foo"}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]});
    let count = |model: &str| {
        let mut b = body.clone();
        b["model"] = json!(model);
        w.router
            .http
            .post(w.router.url("/v1/messages/count_tokens?beta=true"))
            .header("x-api-key", CLIENT_KEY)
            .header("anthropic-beta", "token-counting-2024-11-01")
            .json(&b)
            .send()
    };
    // Anthropic: forwarded as sent, model rewritten, with the beta; its count as it came.
    let resp = count("claude").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-switchboard-token-count").is_none());
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"input_tokens": 4242})
    );
    let seen = w.anthropic.last();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    assert_eq!(seen.body["model"], "claude-x");
    assert_eq!(seen.body["tools"], body["tools"]);
    assert_eq!(seen.headers["anthropic-beta"], "token-counting-2024-11-01");
    assert_eq!(seen.headers["x-api-key"], PROVIDER_KEY);
    // Claude on Vertex: its count-tokens endpoint, the model in the body.
    let resp = count("vclaude").await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["input_tokens"], 4242);
    let seen = w.vertex.last();
    assert_eq!(
        seen.path,
        "/v1/projects/p1/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict"
    );
    assert_eq!(seen.body["model"], "claude-v");
    assert_eq!(seen.body["anthropic_version"], "vertex-2023-10-16");
    // An OpenAI target has no counting API: an estimate, marked.
    let before = w.openai.seen().len();
    let resp = count("oai").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-switchboard-token-count"],
        "estimate; tokenizer=o200k_base"
    );
    let n = resp.json::<Value>().await.unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!((8..40).contains(&n), "{n}");
    assert_eq!(w.openai.seen().len(), before, "nothing was sent upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_messages_path_answers_errors_in_anthropics_shape() {
    let w = World::start().await;
    let http = &w.router.http;
    let anthropic_error = |v: &Value, kind: &str| {
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    };
    let resp = http
        .post(w.router.url("/v1/messages/count_tokens"))
        .header("x-api-key", "sk-sb-wrong-000000000000")
        .json(&json!({"model": "claude", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    anthropic_error(&resp.json().await.unwrap(), "authentication_error");
    let resp = http
        .post(w.router.url("/v1/messages/count_tokens"))
        .header("x-api-key", CLIENT_KEY)
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    anthropic_error(&resp.json().await.unwrap(), "invalid_request_error");
    let resp = http
        .get(w.router.url("/v1/messages/batches/msgbatch_1"))
        .header("x-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    anthropic_error(&resp.json().await.unwrap(), "not_found_error");
    let resp = http
        .get(w.router.url("/api/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    anthropic_error(&resp.json().await.unwrap(), "invalid_request_error");
    // OpenAI paths keep theirs (OpenRouter's envelope, which the OpenAI SDKs read).
    let resp = http
        .post(w.router.url("/v1/chat/completions"))
        .header("authorization", "Bearer sk-sb-wrong-000000000000")
        .json(&json!({"model": "oai", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["metadata"]["error_code"], "invalid_api_key");
    // Claude Code's connectivity probe is answered at once.
    let resp = http.head(w.router.url("/api/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}
