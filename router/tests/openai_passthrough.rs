//! The router against a mock OpenAI-compatible upstream, over real sockets: pass-through is exact,
//! usage is priced, fallbacks and timeouts behave. Client errors are in `client_errors.rs`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn user(content: &str) -> Value {
    json!([{"role": "user", "content": content}])
}

/// Splits an SSE body into its `data:` payloads.
fn sse_payloads(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.strip_prefix("data: ")
                .expect("every frame is a data frame")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn non_streaming_passes_upstream_fields_through_byte_for_byte() {
    let up = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": user("hi"), "provider": {"sort": "price"}, "models": ["test/model"]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .starts_with("gen-")
    );
    let body = resp.text().await.unwrap();

    // Every upstream field keeps its exact bytes (spacing, escapes, `1.50`); only `usage` gains
    // `cost`, and `provider` is added.
    type RawFields = std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>;
    let upstream_fields: RawFields = serde_json::from_str(UPSTREAM_COMPLETION).unwrap();
    let relayed_fields: RawFields = serde_json::from_str(&body).unwrap();
    for (key, raw) in &upstream_fields {
        if key != "usage" {
            assert_eq!(
                relayed_fields[key].get(),
                raw.get(),
                "{key} not passed through in {body}"
            );
        }
    }
    // Not even the whitespace between the fields before `usage` changes.
    let before_usage = &UPSTREAM_COMPLETION[..UPSTREAM_COMPLETION.find("\"usage\"").unwrap()];
    assert!(body.starts_with(before_usage), "{body}");
    assert!(
        body.contains(r#""content": "Caf\u00e9 \"quoted\" 1.50""#),
        "{body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let upstream: Value = serde_json::from_str(UPSTREAM_COMPLETION).unwrap();
    assert_eq!(v["provider"], "up0");
    // 19 * 0.15 + 10 * 0.60 = 8.85 per million
    assert!(
        body.contains(r#""cost":0.00000885}"#),
        "exact decimal cost: {body}"
    );
    // The upstream's usage details are kept; the counts Switchboard promises on every answer
    // are added when missing.
    let mut details = upstream["usage"]["prompt_tokens_details"].clone();
    details["cache_write_tokens"] = 0.into();
    assert_eq!(v["usage"]["prompt_tokens_details"], details);
    assert_eq!(
        v["usage"]["completion_tokens_details"],
        upstream["usage"]["completion_tokens_details"]
    );

    // What went upstream: the provider's model id and key, no Switchboard extensions.
    let got = up.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].body, json!({"model": "m", "messages": user("hi")}));
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}").as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_relays_chunks_byte_for_byte_and_prices_the_usage_chunk() {
    let frames = upstream_stream_frames(true);
    let up = MockUpstream::start(Behaviour::Sse(frames.clone(), Duration::from_millis(5))).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": user("hi"), "stream": true}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let got = sse_payloads(&body);
    let sent: Vec<String> = frames
        .iter()
        .map(|f| f.trim_end().strip_prefix("data: ").unwrap().to_string())
        .collect();
    assert_eq!(got.len(), sent.len());
    // Content chunks: identical bytes.
    assert_eq!(got[..4], sent[..4]);
    // Usage chunk: same fields, plus cost (9-4 uncached at 0.15, 4 cached at the input price 0.15,
    // 3 at 0.60 = 3.15 per million) and provider.
    let usage: Value = serde_json::from_str(&got[4]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 9);
    assert!(got[4].contains(r#""cost":0.00000315}"#), "{}", got[4]);
    assert_eq!(usage["provider"], "up0");
    assert_eq!(got[5], "[DONE]");
    // Upstream was asked for usage even though the client did not ask.
    assert_eq!(
        up.received()[0].body["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_without_upstream_usage_still_ends_with_a_usage_chunk() {
    let up = MockUpstream::start(Behaviour::Sse(
        upstream_stream_frames(false),
        Duration::ZERO,
    ))
    .await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let body = router
        .chat(json!({"model": "test/model", "messages": user("hello"), "stream": true}))
        .await
        .text()
        .await
        .unwrap();
    let got = sse_payloads(&body);
    assert_eq!(got.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&got[got.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(usage["usage"]["cost"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_mid_way_ends_with_an_error_chunk_not_done() {
    let mut frames = upstream_stream_frames(false);
    frames.truncate(3); // role, "Hel", "lo é" — then the connection closes
    let up = MockUpstream::start(Behaviour::Sse(frames, Duration::ZERO)).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let body = router
        .chat(json!({"model": "test/model", "messages": user("x"), "stream": true}))
        .await
        .text()
        .await
        .unwrap();
    let got = sse_payloads(&body);
    assert!(!got.contains(&"[DONE]".to_string()), "{body}");
    let last: Value = serde_json::from_str(got.last().unwrap()).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    assert_eq!(last["error"]["metadata"]["error_code"], "stream_truncated");
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_to_the_next_target_when_the_first_fails_before_content() {
    let bad = MockUpstream::start(Behaviour::Json(
        503,
        r#"{"error":{"message":"overloaded"}}"#.into(),
    ))
    .await;
    let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[bad.base_url(), good.base_url()])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": user("hi")}))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["provider"], "up1");
    assert_eq!(bad.received().len(), 1);

    // Streaming: the first upstream fails before content, the client never sees it.
    bad.set(Behaviour::Sse(
        vec!["data: {\"error\":{\"message\":\"overloaded\"}}\n\n".into()],
        Duration::ZERO,
    ));
    good.set(Behaviour::Sse(upstream_stream_frames(true), Duration::ZERO));
    let body = router
        .chat(json!({"model": "test/model", "messages": user("hi"), "stream": true}))
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains("overloaded"), "{body}");
    assert!(body.contains(r#""provider":"up1""#), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_targets_failing_is_a_502_listing_attempts_with_secrets_scrubbed() {
    // The upstream echoes the key it was sent in its error body.
    let echo = format!(r#"{{"error":{{"message":"boom, key was {UPSTREAM_KEY}"}}}}"#);
    let a = MockUpstream::start(Behaviour::Json(500, echo.clone())).await;
    let refused = "http://127.0.0.1:1/v1".to_string();
    let router = TestRouter::start(&manifests(&[a.base_url(), refused])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": user("hi")}))
        .await;
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(!body.contains(UPSTREAM_KEY), "upstream key leaked: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "upstream_error");
    assert_eq!(v["error"]["metadata"]["error_code"], "upstream_failed");
    // Two targets, tried twice: the route's default `retries` is one more pass.
    let attempts = v["error"]["metadata"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{v}");
    for pass in [0, 2] {
        assert_eq!(attempts[pass]["provider"], "up0");
        assert_eq!(attempts[pass]["status"], 500);
        assert_eq!(attempts[pass + 1]["error_type"], "connect");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_client_error_is_passed_on_without_fallback() {
    let body = r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#;
    let a = MockUpstream::start(Behaviour::Json(400, body.into())).await;
    let b = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[a.base_url(), b.base_url()])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": user("hi"), "temperature": 9}))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Invalid value for 'temperature'");
    assert_eq!(v["error"]["metadata"]["provider_name"], "up0");
    assert_eq!(v["error"]["metadata"]["raw"], body);
    assert!(
        b.received().is_empty(),
        "a client error must not be retried elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_pass_through_and_are_priced() {
    let upstream = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let up = MockUpstream::start(Behaviour::Json(200, upstream.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let resp = router
        .http
        .post(router.url("/api/v1/embeddings"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "test/embed", "input": "The food was delicious"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains(r#""embedding":[0.0023064255,-0.009327292]"#),
        "{body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(body.contains(r#""cost":0.00000016}"#), "{body}");
    assert_eq!(v["provider"], "up0");
    assert_eq!(up.received()[0].path, "/v1/embeddings");
    assert_eq!(up.received()[0].body["model"], "embed");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_provider_type_has_an_adapter() {
    // `test/anthropic` is an Anthropic provider at a closed port: the adapter is called (no 501)
    // and the connection failure is reported like any other.
    let router = TestRouter::start(&manifests(&[])).await;
    let (s, v) = error_of(
        router
            .chat(json!({"model": "test/anthropic", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["metadata"]["provider_name"], "claude");
    assert_eq!(v["error"]["metadata"]["error_type"], "connect");
}

#[tokio::test(flavor = "multi_thread")]
async fn models_are_listed_per_key_with_openrouter_fields() {
    let up = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let list = |key: &'static str| {
        let req = router.http.get(router.url("/v1/models")).bearer_auth(key);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let v = list(CLIENT_KEY).await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["test/anthropic", "test/embed", "test/mock", "test/model"],
        "test/denied is filtered"
    );
    let model = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "test/model")
        .unwrap();
    assert_eq!(model["pricing"]["prompt"], "0.00000015");
    assert_eq!(model["pricing"]["completion"], "0.0000006");
    assert_eq!(model["object"], "model");
    let other = list("sk-sb-test-other-0123456789").await;
    assert_eq!(other["data"], json!([]));
    let resp = router
        .http
        .get(router.url("/api/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_report_health_config_and_metrics_without_secrets() {
    let up = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    for _ in 0..3 {
        assert_eq!(
            router
                .chat(json!({"model": "test/model", "messages": user("hi")}))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        router
            .chat(json!({"model": "nope", "messages": user("hi")}))
            .await
            .status(),
        404
    );
    let get = |path: &str| router.http.get(router.admin(path)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["version"], 1);
    assert_eq!(ready["hash"].as_str().unwrap().len(), 64);
    let config = get("/config").await.unwrap().text().await.unwrap();
    assert!(!config.contains(UPSTREAM_KEY), "provider key in /config");
    assert!(!config.contains(CLIENT_KEY), "client key in /config");
    assert!(config.contains("<redacted>"));
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"switchboard_requests_total{endpoint="chat",model="test/model",status="200"} 3"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"switchboard_requests_total{endpoint="chat",model="unknown",status="404"} 1"#
        )
    );
    assert!(metrics.contains(
        r#"switchboard_tokens_total{kind="input",model="test/model",provider="up0"} 57"#
    ));
    assert!(metrics.contains(
        r#"switchboard_request_duration_seconds_count{endpoint="chat",model="test/model"} 3"#
    ));
    assert!(metrics.contains("switchboard_config_version 1"));
    assert!(!metrics.contains(UPSTREAM_KEY) && !metrics.contains(CLIENT_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_times_out_into_the_next_target_or_a_504() {
    let stalled = MockUpstream::start(Behaviour::Stall(Duration::from_secs(30))).await;
    let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[stalled.base_url(), good.base_url()])).await;
    let started = std::time::Instant::now();
    let resp = router
        .chat(json!({"model": "test/model", "messages": user("hi")}))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["provider"], "up1");
    // firstToken is 1500ms in the test manifests.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let alone = TestRouter::start(&manifests(&[stalled.base_url()])).await;
    let (s, v) = error_of(
        alone
            .chat(json!({"model": "test/model", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(s, 504);
    assert_eq!(v["error"]["metadata"]["error_code"], "upstream_timeout");
    assert_eq!(
        v["error"]["metadata"]["attempts"][0]["error_type"],
        "timeout_first_token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_goes_silent_mid_way_ends_with_an_error_chunk() {
    let mut frames = upstream_stream_frames(false);
    frames.truncate(2);
    // After the first content chunk the upstream goes silent for longer than `idle` (1500ms).
    let up = MockUpstream::start(Behaviour::SseThenSilence(frames, Duration::from_secs(30))).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let body = router
        .chat(json!({"model": "test/model", "messages": user("x"), "stream": true}))
        .await
        .text()
        .await
        .unwrap();
    let got = sse_payloads(&body);
    let last: Value = serde_json::from_str(got.last().unwrap()).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "error", "{body}");
    assert_eq!(
        last["error"]["metadata"]["error_code"],
        "stream_interrupted"
    );
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out (idle)")
    );
}
