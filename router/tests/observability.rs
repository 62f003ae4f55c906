//! What platform teams see: `/metrics` after scripted traffic, counted exactly; and no secret (a
//! provider key, a client key) in logs or metrics after a run that includes errors.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// The value of the exposition line that starts with `series` (labels included), exactly.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_scripted_traffic_exactly() {
    // up0 fails (503) and up1 answers: test/model requests are all fallbacks. test/mock is the
    // built-in mock at $1/$2 per million: "hi" → 1 input token, "echo: hi" → 2 output tokens.
    let bad = MockUpstream::start(Behaviour::Json(503, "{}".into())).await;
    let good = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let router = TestRouter::start(&manifests(&[bad.base_url(), good.base_url()])).await;
    for _ in 0..3 {
        let r = router
            .chat(json!({"model": "test/mock", "messages": hi()}))
            .await;
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = router
            .chat(json!({"model": "test/mock", "messages": hi(), "stream": true}))
            .await;
        assert!(r.text().await.unwrap().ends_with("[DONE]\n\n"));
    }
    assert_eq!(
        router
            .chat(json!({"model": "test/model", "messages": hi()}))
            .await
            .status(),
        200
    );
    assert_eq!(
        router
            .chat(json!({"model": "nope", "messages": hi()}))
            .await
            .status(),
        404
    );
    let unauthorized = router
        .http
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "test/mock", "messages": hi()}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    // Records are written when each request ends; give the last stream a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let m = router.metrics().await;
        if m.contains(
            r#"switchboard_requests_total{endpoint="chat",model="test/mock",status="200"} 5"#,
        ) || Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let s = |series: &str| sample(&metrics, series);
    assert_eq!(
        s(r#"switchboard_requests_total{endpoint="chat",model="test/mock",status="200"}"#),
        5.0
    );
    assert_eq!(
        s(r#"switchboard_requests_total{endpoint="chat",model="test/model",status="200"}"#),
        1.0
    );
    assert_eq!(
        s(r#"switchboard_requests_total{endpoint="chat",model="unknown",status="404"}"#),
        1.0
    );
    assert_eq!(
        s(r#"switchboard_requests_total{endpoint="chat",model="unknown",status="401"}"#),
        1.0
    );
    // Tokens: 5 × (1 in, 2 out) on the mock; 19 in, 10 out from the upstream completion.
    assert_eq!(
        s(r#"switchboard_tokens_total{kind="input",model="test/mock",provider="mock"}"#),
        5.0
    );
    assert_eq!(
        s(r#"switchboard_tokens_total{kind="output",model="test/mock",provider="mock"}"#),
        10.0
    );
    assert_eq!(
        s(r#"switchboard_tokens_total{kind="input",model="test/model",provider="up1"}"#),
        19.0
    );
    assert_eq!(
        s(
            r#"gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="mock",gen_ai_request_model="test/mock",gen_ai_token_type="output"}"#
        ),
        10.0
    );
    assert_eq!(
        s(
            r#"gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="mock",gen_ai_request_model="test/mock",gen_ai_token_type="input"}"#
        ),
        5.0
    );
    // Cost: 5 × $0.000005 on the mock; 19 × 0.15 + 10 × 0.60 = $0.00000885 on up1.
    let mock_spend =
        s(r#"switchboard_spend_usd_total{key="main",model="test/mock",provider="mock",team="a"}"#);
    assert!((mock_spend - 0.000025).abs() < 1e-12, "{mock_spend}");
    let up1_spend =
        s(r#"switchboard_spend_usd_total{key="main",model="test/model",provider="up1",team="a"}"#);
    assert!((up1_spend - 0.00000885).abs() < 1e-12, "{up1_spend}");
    // Upstream attempts by outcome, fallbacks, streams.
    assert_eq!(
        s(r#"switchboard_upstream_attempts_total{outcome="status_503",provider="up0"}"#),
        1.0
    );
    assert_eq!(
        s(r#"switchboard_upstream_attempts_total{outcome="ok",provider="up1"}"#),
        1.0
    );
    assert_eq!(
        s(r#"switchboard_upstream_attempts_total{outcome="ok",provider="mock"}"#),
        5.0
    );
    assert_eq!(s(r#"switchboard_fallbacks_total{model="test/model"}"#), 1.0);
    assert_eq!(
        s(r#"switchboard_time_to_first_token_seconds_count{model="test/mock",provider="mock"}"#),
        2.0
    );
    assert_eq!(s("switchboard_open_streams"), 0.0);
    assert_eq!(
        s(r#"switchboard_gateway_overhead_seconds_count{endpoint="chat"}"#),
        6.0
    );
    assert_eq!(
        s(
            r#"gen_ai_client_operation_duration_seconds_count{error_type="404",gen_ai_operation_name="chat",gen_ai_provider_name="-",gen_ai_request_model="unknown"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_logs_spans_or_metrics_even_when_things_fail() {
    let (otlp, spans) = collector().await;
    // The upstream rejects the router's key and echoes it back, OpenAI-style; clients send a
    // wrong key, a disabled key and a good one; a streaming request breaks mid-way.
    let echoing = MockUpstream::start(Behaviour::Json(
        401,
        format!(r#"{{"error":{{"message":"Incorrect API key provided: {UPSTREAM_KEY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#),
    ))
    .await;
    let mut cut = upstream_stream_frames(false);
    cut.truncate(3);
    let breaking = MockUpstream::start(Behaviour::Sse(cut, Duration::ZERO)).await;
    let log_path = temp_manifest("");
    let mut router = RouterProcess::spawn(
        &manifests(&[echoing.base_url(), breaking.base_url()]),
        &["--log-format", "json", "--log", "debug"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
        Some(&log_path),
    )
    .await;
    let client = http();
    let (base, admin_url) = (router.api.clone(), router.admin.clone());
    let send = |key: &'static str, body: Value| {
        let req = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let bodies = vec![
        send(CLIENT_KEY, json!({"model": "test/model", "messages": hi()})).await,
        send(
            CLIENT_KEY,
            json!({"model": "test/model", "messages": hi(), "stream": true}),
        )
        .await,
        send(
            "sk-sb-wrong-but-secret-0123456789",
            json!({"model": "test/model", "messages": hi()}),
        )
        .await,
        send(
            "sk-sb-test-disabled-0123456789",
            json!({"model": "test/model", "messages": hi()}),
        )
        .await,
        send(CLIENT_KEY, json!({"model": "test/mock", "messages": hi()})).await,
    ];
    let metrics = get_text(&client, &format!("{admin_url}/metrics")).await;
    let config = get_text(&client, &format!("{admin_url}/config")).await;
    // SIGTERM flushes the span exporter before the process exits.
    router.sigterm();
    router.wait_exit(Duration::from_secs(10)).await;
    let spans = format!("{:?}", spans.lock().unwrap());
    assert!(
        spans.contains("status_401"),
        "the failing requests were traced: {spans}"
    );
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("upstream attempt failed"),
        "the failures were logged: {logs}"
    );
    assert!(
        logs.contains("switchboard::access"),
        "access log lines were written"
    );
    for secret in [
        UPSTREAM_KEY,
        CLIENT_KEY,
        "sk-sb-wrong-but-secret-0123456789",
        "sk-sb-test-disabled-0123456789",
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs");
        assert!(!spans.contains(secret), "{secret} in the spans");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
        assert!(!config.contains(secret), "{secret} in /config");
        for body in &bodies {
            if secret == UPSTREAM_KEY {
                assert!(
                    !body.contains(secret),
                    "the provider key reached a client: {body}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_level_changes_at_runtime_from_the_admin_port() {
    let log_path = temp_manifest("");
    let mut router =
        RouterProcess::spawn(&manifests(&[]), &["--log", "warn"], &[], Some(&log_path)).await;
    let client = http();
    let (api, admin_url) = (router.api.clone(), router.admin.clone());
    let chat = || {
        client
            .post(format!("{api}/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": "test/mock", "messages": hi()}))
            .send()
    };
    assert_eq!(chat().await.unwrap().status(), 200);
    let level = client
        .get(format!("{admin_url}/loglevel"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(level.trim(), "warn");
    let bad = client
        .put(format!("{admin_url}/loglevel"))
        .body("info,[[")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok = client
        .put(format!("{admin_url}/loglevel"))
        .body("info")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(chat().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.sigterm();
    router.wait_exit(Duration::from_secs(10)).await;
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        logs.matches("switchboard::access").count(),
        1,
        "only the request after the change is logged at info: {logs}"
    );
}
