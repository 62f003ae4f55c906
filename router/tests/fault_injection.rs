//! Routing under failure, through real sockets: each fault a provider can show (429 with and
//! without `Retry-After`, 5xx, refused connections, stalls, cut streams), what the client sees,
//! and how the router's view of each target changes (ejection, probing back, cooling down,
//! concurrency caps). Timing bounds follow the timeouts in the test manifests (1.5 s first token).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use switchboard_router::{routing::health::HealthPolicy, state::Settings};

/// Eject at the first failure, for 400 ms at first.
fn quick_ejection() -> Settings {
    Settings {
        health: HealthPolicy {
            consecutive_failures: 1,
            base_ejection: Duration::from_millis(400),
            ..HealthPolicy::default()
        },
        ..Settings::default()
    }
}

async fn provider_of(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["provider"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_falls_back_and_cools_the_target_down() {
    let limited = MockUpstream::start(Behaviour::RateLimited(Some(30))).await;
    let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[limited.base_url(), good.base_url()])).await;
    for _ in 0..3 {
        let p = provider_of(
            router
                .chat(json!({"model": "test/model", "messages": hi()}))
                .await,
        )
        .await;
        assert_eq!(p, "up1");
    }
    assert_eq!(
        limited.count(),
        1,
        "Retry-After: 30 keeps the target out of rotation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_or_without_retry_after_decides_whether_the_target_stays_a_fallback() {
    for (retry_after, later_calls) in [(None, 1), (Some(30), 0)] {
        let limited = MockUpstream::start(Behaviour::RateLimited(retry_after)).await;
        let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
        let router = TestRouter::start(&manifests(&[limited.base_url(), good.base_url()])).await;
        let p = provider_of(
            router
                .chat(json!({"model": "test/model", "messages": hi()}))
                .await,
        )
        .await;
        assert_eq!(p, "up1");
        // Now up1 fails too: without Retry-After up0 is still tried as a fallback (after up1,
        // since it failed recently); with Retry-After it is left alone.
        good.set(Behaviour::Json(503, "{}".into()));
        let resp = router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await;
        assert!(resp.status().is_server_error() || resp.status() == 429);
        assert_eq!(
            limited.count(),
            1 + later_calls * 2,
            "Retry-After {retry_after:?} (one retry pass)"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_target_is_rate_limited_the_client_gets_429_with_retry_after() {
    let a = MockUpstream::start(Behaviour::RateLimited(Some(7))).await;
    let b = MockUpstream::start(Behaviour::RateLimited(Some(3))).await;
    let router = TestRouter::start(&manifests(&[a.base_url(), b.base_url()])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(
        v["error"]["metadata"]["attempts"].as_array().unwrap().len(),
        2,
        "no retry pass: both are cooling"
    );
    // While both cool down the router answers 429 without calling them.
    let resp = router
        .chat(json!({"model": "test/model", "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 429);
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 3
    );
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_refused_connections_fall_back_within_the_request() {
    for first in [
        Behaviour::Json(500, r#"{"error":{"message":"internal"}}"#.into()),
        Behaviour::Json(503, r#"{"error":{"message":"overloaded"}}"#.into()),
    ] {
        let bad = MockUpstream::start(first).await;
        let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
        let router = TestRouter::start(&manifests(&[bad.base_url(), good.base_url()])).await;
        let p = provider_of(
            router
                .chat(json!({"model": "test/model", "messages": hi()}))
                .await,
        )
        .await;
        assert_eq!(p, "up1");
    }
    let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let refused = format!("http://127.0.0.1:{}/v1", free_port());
    let router = TestRouter::start(&manifests(&[refused, good.base_url()])).await;
    let started = Instant::now();
    let p = provider_of(
        router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await,
    )
    .await;
    assert_eq!(p, "up1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refused connection fails fast"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_that_stall_before_content_are_replaced_invisibly() {
    // The first upstream sends only the role chunk, then nothing: no content within firstToken.
    let mut opening = upstream_stream_frames(false);
    opening.truncate(1);
    let stalls =
        MockUpstream::start(Behaviour::SseThenSilence(opening, Duration::from_secs(30))).await;
    let good =
        MockUpstream::start(Behaviour::Sse(upstream_stream_frames(true), Duration::ZERO)).await;
    let router = TestRouter::start(&manifests(&[stalls.base_url(), good.base_url()])).await;
    let started = Instant::now();
    let body = router
        .chat(json!({"model": "test/model", "messages": hi(), "stream": true}))
        .await
        .text()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(
        body.matches(r#""role":"assistant""#).count(),
        1,
        "the stalled opening never reached the client"
    );
    assert!(
        body.contains(r#""provider":"up1""#) && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ejected_target_is_probed_and_returns_to_service() {
    let flaky = MockUpstream::start(Behaviour::Json(
        500,
        r#"{"error":{"message":"down"}}"#.into(),
    ))
    .await;
    let steady = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    // up0 has the better priority, so it takes all traffic while it is in service.
    let router = TestRouter::start_with(
        &manifests(&[flaky.base_url(), steady.base_url()]),
        quick_ejection(),
    )
    .await;
    let p = provider_of(
        router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await,
    )
    .await;
    assert_eq!(
        p, "up1",
        "up0 failed and was ejected; up1 took over within the request"
    );
    assert_eq!(flaky.count(), 1);
    // While ejected (400 ms), up0 gets no traffic.
    for _ in 0..5 {
        assert_eq!(
            provider_of(
                router
                    .chat(json!({"model": "test/model", "messages": hi()}))
                    .await
            )
            .await,
            "up1"
        );
    }
    assert_eq!(flaky.count(), 1, "an ejected target gets no traffic");
    // It recovers; after the ejection one probe goes to it, succeeds, and it is back.
    flaky.set(Behaviour::Json(200, UPSTREAM_COMPLETION.into()));
    tokio::time::sleep(Duration::from_millis(450)).await;
    for _ in 0..5 {
        assert_eq!(
            provider_of(
                router
                    .chat(json!({"model": "test/model", "messages": hi()}))
                    .await
            )
            .await,
            "up0"
        );
    }
    assert_eq!(flaky.count(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_probe_keeps_the_target_out() {
    let flaky = MockUpstream::start(Behaviour::Json(503, "{}".into())).await;
    let steady = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start_with(
        &manifests(&[flaky.base_url(), steady.base_url()]),
        quick_ejection(),
    )
    .await;
    router
        .chat(json!({"model": "test/model", "messages": hi()}))
        .await;
    let ejected_at = flaky.count();
    assert_eq!(ejected_at, 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        provider_of(
            router
                .chat(json!({"model": "test/model", "messages": hi()}))
                .await
        )
        .await,
        "up1"
    );
    assert_eq!(flaky.count(), ejected_at + 1, "exactly one probe");
    for _ in 0..5 {
        router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await;
    }
    assert_eq!(
        flaky.count(),
        ejected_at + 1,
        "re-ejected for longer (800 ms)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_preferences_steer_the_request() {
    let a = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let b = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[a.base_url(), b.base_url()])).await;
    let chat = |provider: Value| {
        router.chat(json!({"model": "test/model", "messages": hi(), "provider": provider}))
    };
    assert_eq!(
        provider_of(chat(json!({"order": ["up1", "up0"]})).await).await,
        "up1"
    );
    assert_eq!(
        provider_of(chat(json!({"ignore": ["up0"]})).await).await,
        "up1"
    );
    assert_eq!(
        provider_of(chat(json!({"only": ["up1"]})).await).await,
        "up1"
    );
    let resp = chat(json!({"only": ["up1"], "ignore": ["up1"]})).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("up0/m: not in provider.only") && msg.contains("up1/m: in provider.ignore"),
        "{msg}"
    );
    let resp = chat(json!({"data_collection": "deny"})).await;
    assert_eq!(
        resp.status(),
        503,
        "no test provider declares a data policy"
    );
    let resp = chat(json!({"order": ["up1"], "speed": "fast"})).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `speed`"),
        "{v}"
    );
    assert_eq!(v["error"]["param"], "provider");
    // Preferences never reach the upstream.
    assert!(!field_reached(&[&a, &b], "provider"));
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_fallbacks_false_stops_at_the_chosen_provider() {
    let a = MockUpstream::start(Behaviour::Json(503, "{}".into())).await;
    let b = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[a.base_url(), b.base_url()])).await;
    let resp = router
        .chat(json!({"model": "test/model", "messages": hi(), "provider": {"order": ["up0"], "allow_fallbacks": false}}))
        .await;
    assert_eq!(resp.status(), 502);
    assert_eq!(b.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn model_fallbacks_take_over_on_any_error_including_client_errors() {
    let rejects = MockUpstream::start(Behaviour::Json(
        400,
        r#"{"error":{"message":"This model's maximum context length is 8 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#.into(),
    ))
    .await;
    let router = TestRouter::start(&manifests(&[rejects.base_url()])).await;
    // Without a fallback model the upstream's 400 goes back as is.
    let resp = router
        .chat(json!({"model": "test/model", "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 400);
    // With `models`, the next model serves.
    let resp = router
        .chat(json!({"model": "test/model", "models": ["test/mock"], "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 200);
    let generation = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["provider"], "mock");
    // The generation record tells the story.
    let url = |base: &str| router.url(&format!("{base}/generation?id={generation}"));
    let g: Value = get_as(&router.http, url("/api/v1"), CLIENT_KEY)
        .await
        .json()
        .await
        .unwrap();
    let d = &g["data"];
    assert_eq!(d["model"], "test/mock");
    assert_eq!(d["provider_name"], "mock");
    assert_eq!(d["streamed"], false);
    assert_eq!(d["finish_reason"], "stop");
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0]["provider"].as_str(),
            attempts[0]["status"].as_u64()
        ),
        (Some("up0"), Some(400))
    );
    assert_eq!(
        (
            attempts[1]["provider"].as_str(),
            attempts[1]["ok"].as_bool()
        ),
        (Some("mock"), Some(true))
    );
    assert!(d["total_cost"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    // Another key cannot read it.
    let other = get_as(&router.http, url("/v1"), "sk-sb-test-other-0123456789").await;
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_cancels_the_upstream_stream() {
    // 40 chunks, 50 ms apart: two seconds of streaming.
    let mut frames = upstream_stream_frames(true);
    let content = frames[1].clone();
    frames.splice(1..2, std::iter::repeat_n(content, 40));
    let up = MockUpstream::start(Behaviour::Sse(frames, Duration::from_millis(50))).await;
    let router = TestRouter::start(&manifests(&[up.base_url()])).await;
    // A raw connection, so that hanging up really closes the socket.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"model": "test/model", "messages": hi(), "stream": true}).to_string();
    let mut tcp = tokio::net::TcpStream::connect(router.server.api_addr)
        .await
        .unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(2);
    while up.cancelled() == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrency_cap_sends_the_overflow_elsewhere() {
    let mut frames = upstream_stream_frames(true);
    let content = frames[1].clone();
    frames.splice(1..2, std::iter::repeat_n(content, 10));
    let slow = MockUpstream::start(Behaviour::Sse(frames, Duration::from_millis(50))).await;
    let other = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let manifest = manifests(&[slow.base_url(), other.base_url()]).replacen(
        "  type: openaiCompatible\n",
        "  type: openaiCompatible\n  maxConcurrentRequests: 1\n",
        1,
    );
    let router = TestRouter::start(&manifest).await;
    let streaming = router
        .chat(json!({"model": "test/model", "messages": hi(), "stream": true}))
        .await;
    assert_eq!(streaming.status(), 200);
    // up0 is busy with the stream: the next request goes to up1 without waiting.
    let p = provider_of(
        router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await,
    )
    .await;
    assert_eq!(p, "up1");
    let body = streaming.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    // The slot is free again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    slow.set(Behaviour::Json(200, UPSTREAM_COMPLETION.into()));
    let p = provider_of(
        router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await,
    )
    .await;
    assert_eq!(p, "up0");
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_stick_to_one_target() {
    let a = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let b = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let manifest = manifests(&[a.base_url(), b.base_url()])
        .replace("model: m, priority: 1", "model: m, priority: 0");
    let router = TestRouter::start(&manifest).await;
    let mut seen = std::collections::HashSet::new();
    for session in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] {
        let first = provider_of(
            router
                .chat(json!({"model": "test/model", "messages": hi(), "session_id": session}))
                .await,
        )
        .await;
        for _ in 0..4 {
            let again = provider_of(
                router
                    .chat(json!({"model": "test/model", "messages": hi(), "session_id": session}))
                    .await,
            )
            .await;
            assert_eq!(again, first, "session {session} moved");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "sessions spread over both targets");
    assert!(!field_reached(&[&a, &b], "session_id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_deadline_bounds_every_attempt_and_retry() {
    // Both targets stall longer than the route's 1 s deadline (firstToken alone would allow 1.5 s
    // each, plus a retry pass).
    let a = MockUpstream::start(Behaviour::Stall(Duration::from_secs(30))).await;
    let b = MockUpstream::start(Behaviour::Stall(Duration::from_secs(30))).await;
    let manifest = manifests(&[a.base_url(), b.base_url()]).replace(
        "metadata: {name: model}\nspec: {model: test/model,",
        "metadata: {name: model}\nspec: {timeout: 1s, retries: {attempts: 3, backoff: 10ms}, model: test/model,",
    );
    assert!(manifest.contains("timeout: 1s"));
    let router = TestRouter::start(&manifest).await;
    let started = Instant::now();
    let resp = router
        .chat(json!({"model": "test/model", "messages": hi()}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(1600),
        "{elapsed:?}"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["metadata"]["error_code"], "upstream_timeout");
}
