//! The router against a mock OpenAI-compatible upstream, over real sockets: pass-through is exact,
//! usage is priced, and every client error gets the right status in the OpenAI error envelope.

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
    assert_eq!(
        v["usage"]["prompt_tokens_details"],
        upstream["usage"]["prompt_tokens_details"]
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
    assert_eq!(last["error"]["code"], "stream_truncated");
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
    assert_eq!(v["error"]["code"], "upstream_failed");
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

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error bodies are JSON");
    for field in ["message", "type", "code"] {
        assert!(
            v["error"][field].is_string(),
            "error.{field} missing in {v}"
        );
    }
    assert!(
        v["error"].get("param").is_some(),
        "error.param missing in {v}"
    );
    (status, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_are_401() {
    let router = TestRouter::start(&manifests(&[])).await;
    let url = router.url("/v1/chat/completions");
    let body = json!({"model": "test/mock", "messages": user("hi")});
    let cases = [
        (None, "missing_api_key"),
        (Some("sk-sb-not-a-real-key-000000"), "invalid_api_key"),
        (Some("sk-sb-test-disabled-0123456789"), "api_key_disabled"),
        (Some("sk-sb-test-expired-01234567890"), "api_key_expired"),
    ];
    for (key, code) in cases {
        let mut req = router.http.post(&url).json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (status, v) = error_of(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{code}");
        assert_eq!(v["error"]["code"], code);
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    // x-api-key works as well as Authorization.
    let resp = router
        .http
        .post(&url)
        .header("x-api-key", CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn model_errors_are_403_and_404() {
    let router = TestRouter::start(&manifests(&[])).await;
    let (s, v) = error_of(
        router
            .chat(json!({"model": "test/denied", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let (s, v) = error_of(
        router
            .chat(json!({"model": "nope/nope", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let resp = router
        .http
        .post(router.url("/v1/chat/completions"))
        .bearer_auth("sk-sb-test-other-0123456789")
        .json(&json!({"model": "test/mock", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_400_with_the_position_and_oversized_ones_413() {
    let router = TestRouter::start_with(
        &manifests(&[]),
        switchboard_router::state::Settings {
            max_request_bytes: 4096,
            ..Default::default()
        },
    )
    .await;
    let post = |body: Vec<u8>| {
        router
            .http
            .post(router.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (s, v) = error_of(
        post(b"{\"model\": \"test/mock\",\n \"messages\": [}".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{v}"
    );
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "empty"),
        (b"[1,2]", "expected a JSON object"),
        (b"\xff\xfe garbage", "Invalid JSON"),
        (br#"{"model":"test/mock"}"#, "`messages` is required"),
        (
            br#"{"model":"test/mock","messages":"hi"}"#,
            "`messages` must be an array",
        ),
        (
            br#"{"model":"test/mock","messages":[]}"#,
            "must not be empty",
        ),
        (
            br#"{"model":"test/mock","messages":[{"content":"x"}]}"#,
            "string `role`",
        ),
        (
            br#"{"model":"test/mock","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            "`stream` must be a boolean",
        ),
        (
            br#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
            "`model` must be a string",
        ),
        (
            br#"{"messages":[{"role":"user","content":"x"}]}"#,
            "`model` is required",
        ),
        (
            br#"{"model":"test/mock","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            "max_tokens",
        ),
    ];
    for (body, needle) in cases {
        let (s, v) = error_of(post(body.to_vec()).await.unwrap()).await;
        assert_eq!(s, 400, "{needle}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {v}"
        );
    }
    let big = format!(
        r#"{{"model":"test/mock","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );
    let (s, v) = error_of(post(big.into_bytes()).await.unwrap()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );
    // Chunked (no Content-Length) bodies are cut off at the limit too.
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1000]))),
    );
    let resp = router
        .http
        .post(router.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
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
async fn unknown_paths_and_methods_get_openai_shaped_errors() {
    let router = TestRouter::start(&manifests(&[])).await;
    let (s, _) = error_of(
        router
            .http
            .get(router.url("/v1/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = error_of(
        router
            .http
            .get(router.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 405);
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
    assert_eq!(v["error"]["code"], "upstream_timeout");
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
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out (idle)")
    );
}

/// A request refused before its body is needed (a bad key) still has its body read: answering
/// over an unread body makes the server close the connection, and a client whose body arrives
/// after the answer sees a reset instead of the 401. Here the body comes 50 ms after the headers
/// and the connection must serve a second request.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_keeps_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    let body = r#"{"model":"test/model","messages":[{"role":"user","content":"hi"}]}"#;
    let head = |key: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
    };
    let mut tcp = tokio::net::TcpStream::connect(router.server.api_addr)
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let read_response = async |tcp: &mut tokio::net::TcpStream| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the connection closed: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if buf.len() >= end + 4 + len {
                    return text;
                }
            }
        }
    };
    tcp.write_all(head("sk-sb-not-a-key-000000000000").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    tcp.write_all(body.as_bytes()).await.unwrap();
    let refused = read_response(&mut tcp).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    tcp.write_all(format!("{}{body}", head(CLIENT_KEY)).as_bytes())
        .await
        .unwrap();
    let served = read_response(&mut tcp).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}
