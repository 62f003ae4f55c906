//! Response caching (docs/caching.md) end to end, on real sockets: an exact hit never reaches
//! the upstream, costs nothing, charges no budget and is marked on its record; scopes keep one
//! key's answers from another (`key`) or share them within a team (`team`); entries expire;
//! `no-cache`, `no-store` and `"cache": false` bypass; a streamed hit replays as a normal stream
//! (checked with the official `openai` SDK too) and a streamed miss fills the cache; a semantic
//! hit for a paraphrase and a miss for another question, with a deterministic bag-of-words
//! embedding; a Redis shared by two routers (one fills, the other hits); Redis down → misses;
//! `/v1/messages` hits in its own format, apart from chat's entries.

mod support;

use std::{process::Stdio, time::Duration};

use axum::{Json, Router, routing::post};
use serde_json::{Value, json};
use support::{
    Behaviour, MockUpstream, TestRouter, UPSTREAM_COMPLETION, UPSTREAM_KEY, get_as,
    upstream_stream_frames,
};
use switchboard_router::state::Settings;

const KEY_A: &str = "sk-sb-cache-alice-0123456789";
const KEY_B: &str = "sk-sb-cache-bob-01234567890";
const KEY_C: &str = "sk-sb-cache-carol-0123456789";

/// Keys `a` and `b` of team `x`, `c` of team `y`, all with a budget; routes over the chat
/// upstream `chat` (one per cache setting) and the embeddings upstream `embed`.
fn manifest(chat: &str, embed: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{upstream: {UPSTREAM_KEY}, a: {KEY_A}, b: {KEY_B}, c: {KEY_C}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: up}}
spec:
  type: openaiCompatible
  baseURL: {chat}
  credentials: {{secretRef: {{name: s, key: upstream}}}}
  models: [{{name: m, pricing: {{inputUSDPerMillion: "1", outputUSDPerMillion: "2"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: emb}}
spec:
  type: openaiCompatible
  baseURL: {embed}
  credentials: {{secretRef: {{name: s, key: upstream}}}}
  models: [{{name: e, pricing: {{inputUSDPerMillion: "0.02"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: plain}}
spec: {{model: test/plain, targets: [{{provider: up, model: m}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: cached}}
spec:
  model: test/cached
  targets: [{{provider: up, model: m}}]
  cache: {{mode: exact, ttl: 1h}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: team}}
spec:
  model: test/team
  targets: [{{provider: up, model: m}}]
  cache: {{mode: exact, scope: team}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: short}}
spec:
  model: test/short
  targets: [{{provider: up, model: m}}]
  cache: {{mode: exact, ttl: 400ms}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: semantic}}
spec:
  model: test/semantic
  targets: [{{provider: up, model: m}}]
  cache: {{mode: semantic, semantic: {{threshold: 0.8, embeddingModel: test/embed}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: embed}}
spec: {{model: test/embed, targets: [{{provider: emb, model: e}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: a, labels: {{team: x}}}}
spec: {{secretRef: {{name: s, key: a}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: b, labels: {{team: x}}}}
spec: {{secretRef: {{name: s, key: b}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: c, labels: {{team: y}}}}
spec:
  secretRef: {{name: s, key: c}}
  cache: {{mode: exact, scope: key, ttl: 1h}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: a}}
spec: {{limitUSD: "10", window: daily, scope: {{apiKeys: [a]}}}}
"#
    )
}

/// A deterministic embedding: the words of the input (lowercase, letters only), each hashed
/// into one of 64 dimensions. A paraphrase sharing most words is near; another question far.
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 64];
    for word in text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let h = word
            .to_ascii_lowercase()
            .bytes()
            .fold(2166136261u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(16777619)
            });
        v[(h % 64) as usize] += 1.0;
    }
    v
}

/// An embeddings upstream answering [`bag_of_words`]; returns its base URL and a request count.
async fn embeddings_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let app = Router::new().route(
        "/v1/embeddings",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let text = body["input"].as_str().unwrap_or_default().to_string();
                Json(json!({
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": bag_of_words(&text)}],
                    "model": "e",
                    "usage": {"prompt_tokens": 8, "total_tokens": 8}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), count)
}

struct Setup {
    router: TestRouter,
    chat: MockUpstream,
    embeds: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn setup_with(settings: Settings) -> Setup {
    let chat = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let (embed, embeds) = embeddings_upstream().await;
    let router = TestRouter::start_with(&manifest(&chat.base_url(), &embed), settings).await;
    Setup {
        router,
        chat,
        embeds,
    }
}

async fn setup() -> Setup {
    setup_with(Settings::default()).await
}

fn ask(model: &str, question: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": question}]})
}

/// POSTs a chat request with `key` and extra headers: `(X-Switchboard-Cache, body)`.
async fn chat(
    r: &TestRouter,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (String, reqwest::header::HeaderMap, Value) {
    let mut req = r
        .http
        .post(r.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let tag = headers
        .get("x-switchboard-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (tag, headers, resp.json().await.unwrap())
}

/// Waits for background stores to land (they run after the response).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn metric(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}{{{labels}}} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn an_exact_hit_never_reaches_the_upstream_costs_nothing_and_is_recorded() {
    let s = setup().await;
    let r = &s.router;
    let body = ask("test/cached", "hello there");
    let (tag, _, first) = chat(r, KEY_A, &body, &[]).await;
    assert_eq!(tag, "miss");
    let cost = first["usage"]["cost"].as_f64().unwrap();
    assert!(cost > 0.0);
    settle().await;
    let spent_before = r.key_info(KEY_A).await["usage"].clone();
    let (tag, headers, second) = chat(r, KEY_A, &body, &[]).await;
    assert_eq!(tag, "hit");
    assert!(headers.get("x-switchboard-cache-similarity").is_none());
    assert_eq!(s.chat.count(), 1, "the hit never reached the upstream");
    assert_eq!(second["choices"], first["choices"]);
    assert_eq!(second["usage"]["cost"], json!(0));
    assert_eq!(second["usage"]["cache_saved_cost"].as_f64(), Some(cost));
    assert_eq!(
        second["usage"]["prompt_tokens"],
        first["usage"]["prompt_tokens"]
    );
    // No budget was charged for the hit.
    settle().await;
    assert_eq!(r.key_info(KEY_A).await["usage"], spent_before);
    // The record marks the hit and what it saved.
    let id = headers["x-generation-id"].to_str().unwrap();
    let g: Value = get_as(
        &r.http,
        r.url(&format!("/api/v1/generation?id={id}")),
        KEY_A,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(g["data"]["cache"], "exact", "{g}");
    assert_eq!(g["data"]["total_cost"], "0");
    assert_eq!(
        g["data"]["cache_saved_cost"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        cost
    );
    let m = r.metrics().await;
    let labels = r#"mode="exact",route="test/cached""#;
    assert_eq!(metric(&m, "switchboard_cache_hits_total", labels), 1.0);
    assert_eq!(metric(&m, "switchboard_cache_misses_total", labels), 1.0);
    assert_eq!(
        metric(&m, "switchboard_cache_saved_usd_total", labels),
        cost
    );
    // A route without a cache block says nothing of caching.
    let (tag, _, _) = chat(r, KEY_A, &ask("test/plain", "hello there"), &[]).await;
    assert_eq!(tag, "");
}

#[tokio::test]
async fn scope_key_keeps_answers_per_key_and_scope_team_shares_them_within_the_team() {
    let s = setup().await;
    let r = &s.router;
    let body = ask("test/cached", "per key");
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "miss");
    settle().await;
    assert_eq!(
        chat(r, KEY_B, &body, &[]).await.0,
        "miss",
        "b never gets a's answer"
    );
    assert_eq!(s.chat.count(), 2);
    settle().await;
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "hit");
    assert_eq!(chat(r, KEY_B, &body, &[]).await.0, "hit");
    assert_eq!(s.chat.count(), 2);

    let body = ask("test/team", "per team");
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "miss");
    settle().await;
    assert_eq!(chat(r, KEY_B, &body, &[]).await.0, "hit", "same team");
    assert_eq!(s.chat.count(), 3);
    // Key c's own block (scope key) replaces the route's: it never shares team x's answers.
    assert_eq!(chat(r, KEY_C, &body, &[]).await.0, "miss", "other team");
    assert_eq!(s.chat.count(), 4);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let s = setup().await;
    let r = &s.router;
    let body = ask("test/short", "soon stale");
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "miss");
    settle().await;
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "hit");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "miss", "expired");
    assert_eq!(s.chat.count(), 2);
}

#[tokio::test]
async fn no_cache_no_store_and_cache_false_bypass() {
    let s = setup().await;
    let r = &s.router;
    let body = ask("test/cached", "bypass me");
    assert_eq!(chat(r, KEY_A, &body, &[]).await.0, "miss");
    settle().await;
    // no-cache: not served from the cache, though an entry is there.
    let (tag, _, _) = chat(r, KEY_A, &body, &[("cache-control", "no-cache")]).await;
    assert_eq!(tag, "bypass");
    assert_eq!(s.chat.count(), 2);
    // "cache": false: bypassed too, and the field never reaches the upstream.
    let mut off = body.clone();
    off["cache"] = json!(false);
    assert_eq!(chat(r, KEY_A, &off, &[]).await.0, "bypass");
    assert_eq!(s.chat.count(), 3);
    assert!(
        s.chat
            .received()
            .iter()
            .all(|q| q.body.get("cache").is_none())
    );
    // no-store: the answer is not kept, so the next request misses.
    let fresh = ask("test/cached", "never kept");
    let (tag, _, _) = chat(r, KEY_A, &fresh, &[("cache-control", "no-store")]).await;
    assert_eq!(tag, "bypass");
    settle().await;
    assert_eq!(chat(r, KEY_A, &fresh, &[]).await.0, "miss");
    // Sampled requests are not cached unless the route says so.
    let mut hot = ask("test/cached", "bypass me");
    hot["temperature"] = json!(0.7);
    assert_eq!(chat(r, KEY_A, &hot, &[]).await.0, "bypass");
}

/// The SSE `data` payloads of a streamed response, in order.
async fn payloads(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_streamed_hit_replays_as_a_normal_stream_and_a_streamed_miss_fills() {
    let s = setup().await;
    let r = &s.router;
    let body = ask("test/cached", "stream me");
    let (_, _, first) = chat(r, KEY_A, &body, &[]).await;
    settle().await;
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let resp = r
        .http
        .post(r.url("/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-switchboard-cache"], "hit");
    let p = payloads(resp).await;
    assert_eq!(p.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = p[..p.len() - 1]
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        first["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]), "the usage chunk is last");
    assert_eq!(usage["usage"]["cost"], json!(0));
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(s.chat.count(), 1);

    // A streamed miss stores the answer it streamed.
    s.chat
        .set(Behaviour::Sse(upstream_stream_frames(true), Duration::ZERO));
    let mut fresh = ask("test/cached", "streamed first");
    fresh["stream"] = json!(true);
    fresh["stream_options"] = json!({"include_usage": true});
    let resp = r
        .http
        .post(r.url("/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .json(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-switchboard-cache"], "miss");
    payloads(resp).await;
    settle().await;
    let (tag, _, hit) = chat(r, KEY_A, &ask("test/cached", "streamed first"), &[]).await;
    assert_eq!(tag, "hit");
    assert_eq!(hit["choices"][0]["message"]["content"], "Hello é");
    assert_eq!(hit["usage"]["completion_tokens"], 3);
    assert_eq!(s.chat.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_hit_parses_with_the_official_openai_sdk() {
    let Some(python) = std::env::var_os("SWITCHBOARD_TEST_PYTHON").filter(|p| !p.is_empty()) else {
        assert_eq!(
            std::env::var("SWITCHBOARD_SKIP_SDK_TESTS").as_deref(),
            Ok("1"),
            "SWITCHBOARD_TEST_PYTHON is not set: run `make test`, or set \
             SWITCHBOARD_SKIP_SDK_TESTS=1 to skip on purpose"
        );
        eprintln!("\n*** SKIPPED openai SDK cache check: SWITCHBOARD_SKIP_SDK_TESTS=1 ***\n");
        return;
    };
    let s = setup().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/sdk/openai_cache_check.py"
    );
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(s.router.url("/v1"))
        .arg(KEY_A)
        .arg("test/cached")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai_cache_check.py failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        s.chat.count(),
        1,
        "only the first request reached the upstream"
    );
}

#[tokio::test]
async fn a_paraphrase_is_a_semantic_hit_and_another_question_a_miss() {
    let s = setup().await;
    let r = &s.router;
    let q = ask("test/semantic", "What is the capital of France?");
    assert_eq!(chat(r, KEY_A, &q, &[]).await.0, "miss");
    settle().await;
    let paraphrase = ask("test/semantic", "what is the capital city of France");
    let (tag, headers, hit) = chat(r, KEY_A, &paraphrase, &[]).await;
    assert_eq!(tag, "hit");
    let similarity: f64 = headers["x-switchboard-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.8..1.0).contains(&similarity), "{similarity}");
    assert_eq!(hit["usage"]["cost"], json!(0));
    let other = ask("test/semantic", "How do I bake sourdough bread at home?");
    assert_eq!(chat(r, KEY_A, &other, &[]).await.0, "miss");
    assert_eq!(s.chat.count(), 2);
    // Each lookup embedded the question, priced and recorded as the caller's embeddings call.
    assert_eq!(s.embeds.load(std::sync::atomic::Ordering::SeqCst), 3);
    let m = r.metrics().await;
    assert_eq!(
        metric(
            &m,
            "switchboard_cache_hits_total",
            r#"mode="semantic",route="test/semantic""#
        ),
        1.0
    );
    assert!(
        m.contains(
            r#"switchboard_requests_total{endpoint="embeddings",model="test/embed",status="200"} 3"#
        ),
        "{m}"
    );
    // Another key (scope key) never gets a's answer, however near.
    assert_eq!(chat(r, KEY_B, &paraphrase, &[]).await.0, "miss");
}

#[tokio::test]
async fn redis_is_shared_by_two_routers_and_an_outage_is_only_misses() {
    let mut redis = switchboard_e2e::redis::RedisServer::start().await;
    let settings = || {
        let mut s = Settings::default();
        s.cache.redis_url = Some(redis.url());
        s
    };
    let one = setup_with(settings()).await;
    let chat_url = one.chat.base_url();
    let (embed, _) = embeddings_upstream().await;
    let two = TestRouter::start_with(&manifest(&chat_url, &embed), settings()).await;
    let body = ask("test/cached", "shared by replicas");
    assert_eq!(chat(&one.router, KEY_A, &body, &[]).await.0, "miss");
    settle().await;
    let (tag, _, _) = chat(&two, KEY_A, &body, &[]).await;
    assert_eq!(tag, "hit", "the other router hits what the first stored");
    assert_eq!(one.chat.count(), 1);

    redis.stop().await;
    for i in 0..3 {
        let (tag, _, answer) = chat(&two, KEY_A, &body, &[]).await;
        assert_eq!(tag, "miss", "request {i} with Redis down");
        assert!(answer["usage"]["cost"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(one.chat.count(), 4);
    let m = two.metrics().await;
    assert!(
        metric(
            &m,
            "switchboard_cache_errors_total",
            r#"backend="redis",op="get""#
        ) >= 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn the_messages_endpoint_hits_in_its_own_format() {
    let s = setup().await;
    let r = &s.router;
    let body = json!({"model": "test/cached", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hello from claude"}]});
    let post = || {
        r.http
            .post(r.url("/v1/messages"))
            .header("x-api-key", KEY_A)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.headers()["x-switchboard-cache"], "miss");
    let first: Value = first.json().await.unwrap();
    settle().await;
    let second = post().await.unwrap();
    assert_eq!(second.headers()["x-switchboard-cache"], "hit");
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["type"], "message", "{second}");
    assert_eq!(second["content"], first["content"]);
    assert_eq!(s.chat.count(), 1);
    // A chat request with the same messages is another endpoint's entry.
    let chat_body = json!({"model": "test/cached", "max_tokens": 64,
                           "messages": [{"role": "user", "content": "hello from claude"}]});
    assert_eq!(chat(r, KEY_A, &chat_body, &[]).await.0, "miss");
}
