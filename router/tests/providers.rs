//! Every translated provider through real sockets: the router in-process, in front of a mock per
//! wire format (`support/providers.rs`). For each provider: text, streaming, a tool-call round
//! trip (streamed and not), image input, json_schema output, reasoning with its signature sent
//! back on the next turn, usage with cache tokens priced, embeddings where the provider has them,
//! and the error mapping (rate limit, overloaded, context too long, auth) with the upstream body
//! kept in metadata and the credential scrubbed.

#[path = "support/providers.rs"]
mod provider_mocks;
mod support;

use provider_mocks::{PROVIDER_KEY, ProviderMock, SIGNATURE, VERTEX_TOKEN, Wire};
use serde_json::{Value, json};
use support::{CLIENT_KEY, TestRouter};

const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const BAD_KEY: &str = "sk-wrong-key-0123456789abcdefgh";

/// The mocks and a router configured for all of them. Public model names are
/// `<provider>/<case>`: `chat`, `rate-limited`, `overloaded`, `too-long`, `badkey`, `embed`.
struct World {
    anthropic: ProviderMock,
    gemini: ProviderMock,
    bedrock: ProviderMock,
    azure: ProviderMock,
    vertex: ProviderMock,
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
    let v: Value = serde_json::from_str(&key).unwrap();
    v.to_string()
}

const PRICING: &str = r#"{inputUSDPerMillion: "3", outputUSDPerMillion: "15", cachedInputUSDPerMillion: "0.3", cacheWriteUSDPerMillion: "3.75"}"#;

fn provider(
    name: &str,
    ty: &str,
    base: &str,
    cred: &str,
    extra: &str,
    chat_model: &str,
    embed_model: Option<&str>,
) -> String {
    let mut models = format!(
        "    - {{name: {chat_model}, pricing: {PRICING}, capabilities: [tools, vision, jsonSchema, reasoning]}}\n"
    );
    for m in ["rate-limited", "overloaded", "too-long"] {
        models.push_str(&format!("    - {{name: {m}}}\n"));
    }
    if let Some(e) = embed_model {
        models.push_str(&format!(
            "    - {{name: {e}, pricing: {{inputUSDPerMillion: \"0.02\"}}, capabilities: [embeddings]}}\n"
        ));
    }
    let mut out = String::new();
    for (pname, key) in [(name.to_string(), cred), (format!("{name}-badkey"), "bad")] {
        out.push_str(&format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {pname}}}\nspec:\n  type: {ty}\n  baseURL: {base}\n  credentials: {{secretRef: {{name: upstream, key: {key}}}}}\n  timeouts: {{connect: 2s, firstToken: 5s, idle: 5s, total: 20s}}\n{extra}  models:\n{models}"
        ));
    }
    let route = |public: &str, p: &str, m: &str| {
        format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {}}}\nspec: {{model: {public}, targets: [{{provider: {p}, model: {m}}}]}}\n",
            public.replace('/', "-")
        )
    };
    out.push_str(&route(&format!("{name}/chat"), name, chat_model));
    out.push_str(&route(
        &format!("{name}/badkey"),
        &format!("{name}-badkey"),
        chat_model,
    ));
    for m in ["rate-limited", "overloaded", "too-long"] {
        out.push_str(&route(&format!("{name}/{m}"), name, m));
    }
    if let Some(e) = embed_model {
        out.push_str(&route(&format!("{name}/embed"), name, e));
    }
    out
}

impl World {
    async fn start() -> World {
        let anthropic = ProviderMock::start(Wire::Anthropic).await;
        let gemini = ProviderMock::start(Wire::Gemini).await;
        let bedrock = ProviderMock::start(Wire::Bedrock).await;
        let azure = ProviderMock::start(Wire::Azure).await;
        let vertex = ProviderMock::start(Wire::Gemini).await;
        let secrets = json!({
            "key": PROVIDER_KEY,
            "bad": BAD_KEY,
            "aws": r#"{"accessKeyId": "AKIDMOCK", "secretAccessKey": "mock-secret-access-key"}"#,
            "sa": vertex_key(&format!("{}/token", vertex.url())),
        });
        let mut m = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: upstream}}\nstringData: {secrets}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: clients}}\nstringData: {{key: {CLIENT_KEY}}}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: client}}\nspec: {{secretRef: {{name: clients, key: key}}}}\n"
        );
        m.push_str(&provider(
            "anthropic",
            "anthropic",
            &format!("{}/v1", anthropic.url()),
            "key",
            "",
            "claude-x",
            None,
        ));
        m.push_str(&provider(
            "gemini",
            "gemini",
            &format!("{}/v1beta", gemini.url()),
            "key",
            "",
            "gemini-x",
            Some("embed-x"),
        ));
        m.push_str(&provider(
            "bedrock",
            "bedrock",
            &bedrock.url(),
            "aws",
            "  bedrock: {region: us-east-1}\n",
            "anthropic.claude-x-v1:0",
            Some("amazon.titan-embed-text-v2:0"),
        ));
        m.push_str(&provider(
            "azure",
            "azureOpenAI",
            &azure.url(),
            "key",
            "  azure: {apiVersion: 2024-10-21}\n",
            "gpt-4o-deploy",
            Some("embed-deploy"),
        ));
        m.push_str(&provider(
            "vertex",
            "vertex",
            &format!("{}/v1", vertex.url()),
            "sa",
            "  vertex: {project: p1, location: us-east5}\n",
            "gemini-v",
            Some("text-embedding-005"),
        ));
        // Claude on Vertex, same provider type, Anthropic publisher.
        m.push_str(&provider(
            "vertexclaude",
            "vertex",
            &format!("{}/v1", vertex.url()),
            "sa",
            "  vertex: {location: us-east5}\n",
            "claude-v",
            None,
        ));
        let router = TestRouter::start(&m).await;
        World {
            anthropic,
            gemini,
            bedrock,
            azure,
            vertex,
            router,
        }
    }
}

async fn post(router: &TestRouter, body: Value) -> (u16, Value) {
    let resp = router.chat(body).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

/// Streams a request and returns its payloads (without `[DONE]`), checking it ends with one.
async fn stream(router: &TestRouter, mut body: Value) -> Vec<Value> {
    body["stream"] = json!(true);
    let resp = router.chat(body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let payloads: Vec<&str> = text
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(payloads.last(), Some(&"[DONE]"), "{text}");
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

fn streamed_text(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][field].as_str())
        .collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}}])
}

fn weather_schema() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "weather", "strict": true, "schema": {"type": "object",
        "properties": {"city": {"type": "string"}, "temperature_c": {"type": "integer"}},
        "required": ["city", "temperature_c"], "additionalProperties": false}}})
}

/// The checks every chat provider must pass. `reasoning`: whether the provider translates
/// reasoning (Azure passes the request through unchanged).
async fn exercise(router: &TestRouter, name: &str, reasoning: bool) -> Vec<Value> {
    let model = format!("{name}/chat");
    let mut notes = Vec::new();

    // Text, with usage normalised into OpenAI's fields and priced.
    let (status, v) = post(
        router,
        json!({"model": model, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there!", "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["provider"], name);
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], 312, "{v}");
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 200, "{v}");
    assert!(u["cost"].as_f64().unwrap() > 0.0);
    notes.push(v.clone());

    // Streaming: content, then one usage chunk with the cache tokens.
    let chunks = stream(
        router,
        json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(streamed_text(&chunks, "content"), "Hello there!");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 312, "{usage}");
    assert_eq!(
        usage["usage"]["prompt_tokens_details"]["cached_tokens"],
        200
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );

    // Tool call round trip.
    let mut messages = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    let (status, v) = post(router, json!({"model": model, "messages": messages, "tools": weather_tool(), "tool_choice": "auto"})).await;
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    messages.push(choice["message"].clone());
    messages.push(
        json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"sky\": \"sunny\"}"}),
    );
    let (status, v) = post(
        router,
        json!({"model": model, "messages": messages, "tools": weather_tool()}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"], "It is sunny in Paris.",
        "{v}"
    );

    // The tool call, streamed: arguments reassemble.
    let chunks = stream(router, json!({"model": model, "messages": [{"role": "user", "content": "Weather?"}], "tools": weather_tool()})).await;
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris"}),
        "{chunks:?}"
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );

    // Image input.
    let (status, v) = post(router, json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]}]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "I see a red square.");

    // Structured output.
    let (status, v) = post(router, json!({"model": model, "messages": [{"role": "user", "content": "Weather as JSON"}], "response_format": weather_schema()})).await;
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(content).unwrap(),
        json!({"city": "Paris", "temperature_c": 21})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");

    if reasoning {
        let (status, v) = post(router, json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "reasoning": {"max_tokens": 2048}})).await;
        assert_eq!(status, 200, "{v}");
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["reasoning"], "The user greets me.", "{v}");
        assert!(
            msg["reasoning_details"].to_string().contains(SIGNATURE),
            "{v}"
        );
        // Streamed reasoning too.
        let chunks = stream(router, json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "reasoning": {"effort": "high"}})).await;
        assert_eq!(streamed_text(&chunks, "reasoning"), "The user greets me.");
        assert!(serde_json::to_string(&chunks).unwrap().contains(SIGNATURE));
        // The next turn carries the signed reasoning back (each test checks the native form).
        let (status, _) = post(router, json!({"model": model, "reasoning": {"max_tokens": 2048}, "messages": [
            {"role": "user", "content": "Hi"}, msg.clone(), {"role": "user", "content": "And again"}]})).await;
        assert_eq!(status, 200);
    }
    notes
}

/// The four documented failures: status, `error_type`, raw body kept, credential scrubbed.
async fn errors(router: &TestRouter, name: &str, auth_error: &str) {
    let chat = |m: &str| json!({"model": format!("{name}/{m}"), "messages": [{"role": "user", "content": "Hi"}]});
    let (status, v) = post(router, chat("rate-limited")).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["metadata"]["error_type"], "rate_limited");
    assert_eq!(
        v["error"]["metadata"]["attempts"][0]["error_type"],
        "status_429"
    );

    let (status, v) = post(router, chat("overloaded")).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["metadata"]["error_type"], "status_503", "{v}");
    assert!(
        v["error"]["metadata"]["raw"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("overloaded")
            || v["error"]["metadata"]["raw"]
                .as_str()
                .unwrap()
                .contains("unable to process"),
        "{v}"
    );

    let (status, v) = post(router, chat("too-long")).await;
    assert_eq!(status, 400, "context too long is the request's fault: {v}");
    assert_eq!(v["error"]["metadata"]["error_code"], "upstream_rejected");
    assert_eq!(v["error"]["metadata"]["error_type"], "upstream_rejected");
    let raw = v["error"]["metadata"]["raw"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        raw.contains("too long") || raw.contains("exceeds") || raw.contains("context length"),
        "{v}"
    );

    let (status, v) = post(router, chat("badkey")).await;
    assert_eq!(
        status, 502,
        "the provider's own auth failure is not the client's: {v}"
    );
    assert_eq!(v["error"]["metadata"]["error_type"], auth_error, "{v}");
    let text = v.to_string();
    assert!(
        !text.contains(BAD_KEY) && !text.contains(PROVIDER_KEY),
        "{text}"
    );
    assert!(!v["error"]["metadata"]["raw"].as_str().unwrap().is_empty());
}

async fn embeddings(router: &TestRouter, name: &str) -> Value {
    let resp = router
        .http
        .post(router.url("/v1/embeddings"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": format!("{name}/embed"), "input": ["one", "two"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        if name == "azure" { 1 } else { 2 }
    );
    assert!(v["data"][0]["embedding"].is_array());
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_messages_api() {
    let w = World::start().await;
    exercise(&w.router, "anthropic", true).await;
    let seen = w.anthropic.seen();
    assert!(seen.iter().all(|s| s.path == "/v1/messages"));
    // Text: system extracted, max_tokens defaulted, headers set.
    assert_eq!(
        seen[0].body["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(seen[0].body["max_tokens"], 4096);
    assert_eq!(seen[0].body["model"], "claude-x");
    // The tool result went back as a tool_result block answering the tool_use id.
    let round = seen.iter().find(|s| s.raw.contains("tool_result")).unwrap();
    assert_eq!(round.body["messages"][1]["content"][1]["type"], "tool_use");
    assert_eq!(
        round.body["messages"][2]["content"][0]["tool_use_id"],
        "toolu_01A"
    );
    // Image as a base64 source; json_schema as a forced tool.
    assert!(
        seen.iter()
            .any(|s| s.body["messages"][0]["content"][1]["source"]["type"] == "base64")
    );
    assert!(
        seen.iter()
            .any(|s| s.body["tool_choice"] == json!({"type": "tool", "name": "weather"}))
    );
    // Reasoning: the signed thinking block came back on the next turn.
    let last = w.anthropic.last();
    assert_eq!(
        last.body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        last.body["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "The user greets me.", "signature": SIGNATURE})
    );
    errors(&w.router, "anthropic", "status_401").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_usage_is_priced_with_cache_reads_and_writes() {
    let w = World::start().await;
    let (_, v) = post(
        &w.router,
        json!({"model": "anthropic/chat", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    // 12 plain at 3 + 200 cached at 0.3 + 100 written at 3.75 + 30 out at 15 = 921 per million.
    assert_eq!(v["usage"]["prompt_tokens"], 312);
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cache_write_tokens"],
        100
    );
    assert!(v.to_string().contains("\"cost\":0.000921"), "{v}");
    assert_eq!(v["choices"][0]["native_finish_reason"], "end_turn");
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_generate_content() {
    let w = World::start().await;
    exercise(&w.router, "gemini", true).await;
    let seen = w.gemini.seen();
    assert_eq!(seen[0].path, "/v1beta/models/gemini-x:generateContent");
    assert_eq!(
        seen[0].body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert!(
        seen.iter()
            .any(|s| s.path.ends_with(":streamGenerateContent") && s.query == "alt=sse")
    );
    let round = seen
        .iter()
        .find(|s| s.raw.contains("functionResponse"))
        .unwrap();
    assert_eq!(
        round.body["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"sky": "sunny"}})
    );
    // The thought signature of the function call came back on that call.
    assert_eq!(
        round.body["contents"][1]["parts"][0]["thoughtSignature"],
        SIGNATURE
    );
    assert!(seen.iter().any(|s| s.raw.contains("inlineData")));
    let schema = seen
        .iter()
        .find(|s| s.body["generationConfig"]["responseMimeType"] == "application/json")
        .unwrap();
    assert!(
        schema.body["generationConfig"]["responseSchema"]
            .get("additionalProperties")
            .is_none()
    );
    let last = w.gemini.last();
    assert_eq!(
        last.body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    assert_eq!(
        last.body["contents"][1]["parts"][0]["thoughtSignature"],
        SIGNATURE
    );
    let v = embeddings(&w.router, "gemini").await;
    assert_eq!(v["data"][1]["embedding"][0], 0.2);
    assert_eq!(
        w.gemini.last().path,
        "/v1beta/models/embed-x:batchEmbedContents"
    );
    errors(&w.router, "gemini", "status_401").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_converse_with_sigv4_and_event_stream() {
    let w = World::start().await;
    exercise(&w.router, "bedrock", true).await;
    let seen = w.bedrock.seen();
    assert_eq!(seen[0].path, "/model/anthropic.claude-x-v1%3A0/converse");
    assert!(seen.iter().any(|s| s.path.ends_with("/converse-stream")));
    assert_eq!(seen[0].body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(seen[0].body["inferenceConfig"]["maxTokens"], 4096);
    let round = seen.iter().find(|s| s.raw.contains("toolResult")).unwrap();
    assert_eq!(
        round.body["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        "tooluse_01B"
    );
    assert!(
        seen.iter()
            .any(|s| s.body["messages"][0]["content"][1]["image"]["format"] == "png")
    );
    let last = w.bedrock.last();
    assert_eq!(
        last.body["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        2048
    );
    assert_eq!(
        last.body["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"],
        SIGNATURE
    );
    let v = embeddings(&w.router, "bedrock").await;
    assert_eq!(v["usage"]["prompt_tokens"], 8);
    assert_eq!(w.bedrock.last().body, json!({"inputText": "two"}));
    errors(&w.router, "bedrock", "status_403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_deployments() {
    let w = World::start().await;
    exercise(&w.router, "azure", false).await;
    let seen = w.azure.seen();
    assert_eq!(
        seen[0].path,
        "/openai/deployments/gpt-4o-deploy/chat/completions"
    );
    assert_eq!(seen[0].query, "api-version=2024-10-21");
    assert_eq!(seen[0].headers["api-key"], PROVIDER_KEY);
    assert!(seen[0].headers.get("authorization").is_none());
    embeddings(&w.router, "azure").await;
    assert_eq!(
        w.azure.last().path,
        "/openai/deployments/embed-deploy/embeddings"
    );
    errors(&w.router, "azure", "status_401").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vertex_gemini_and_claude_with_a_service_account_token() {
    let w = World::start().await;
    exercise(&w.router, "vertex", true).await;
    exercise(&w.router, "vertexclaude", true).await;
    let seen = w.vertex.seen();
    assert_eq!(
        seen[0].path,
        "/v1/projects/p1/locations/us-east5/publishers/google/models/gemini-v:generateContent"
    );
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {VERTEX_TOKEN}").as_str()
    );
    // Claude: the key's project, rawPredict, anthropic_version in the body, no model.
    let claude = seen
        .iter()
        .find(|s| s.path.contains("/publishers/anthropic/"))
        .unwrap();
    assert_eq!(
        claude.path,
        "/v1/projects/sb-test-project/locations/us-east5/publishers/anthropic/models/claude-v:rawPredict"
    );
    assert_eq!(claude.body["anthropic_version"], "vertex-2023-10-16");
    assert!(claude.body.get("model").is_none());
    assert!(seen.iter().any(|s| s.path.ends_with(":streamRawPredict")));
    // One token per provider, cached across requests; the assertion is a signed JWT.
    let tokens = w.vertex.token_requests();
    assert_eq!(
        tokens.len(),
        2,
        "one token for each provider, reused: {tokens:?}"
    );
    let assertion = tokens[0].split("assertion=").nth(1).unwrap();
    assert_eq!(assertion.split('.').count(), 3);
    embeddings(&w.router, "vertex").await;
    assert!(
        w.vertex
            .last()
            .path
            .ends_with("/publishers/google/models/text-embedding-005:predict")
    );
    // The badkey provider's credential is not a service-account key at all.
    errors(&w.router, "vertex", "credential").await;
}
