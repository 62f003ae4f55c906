//! OpenTelemetry traces received by an OTLP/HTTP collector written here (it decodes the protobuf
//! with `opentelemetry-proto`): a streaming request that falls back once yields one server span
//! continuing the client's `traceparent`, with the GenAI attributes, and one client span per
//! attempt under it; each provider receives the trace context of its own attempt span; no prompt
//! content is recorded.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::{
    common::v1::any_value::Value as Any,
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use serde_json::json;
use support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const PROMPT: &str = "a prompt that must never be recorded";

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        other => panic!(
            "attribute {key} missing or odd on span {}: {other:?}",
            span.name
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_request_that_falls_back_once_is_traced_end_to_end() {
    let (endpoint, spans) = collector().await;
    let failing = MockUpstream::start(Behaviour::Sse(
        vec!["data: {\"error\":{\"message\":\"overloaded\"}}\n\n".into()],
        Duration::ZERO,
    ))
    .await;
    let good =
        MockUpstream::start(Behaviour::Sse(upstream_stream_frames(true), Duration::ZERO)).await;
    let router = RouterProcess::spawn_with_env(
        &manifests(&[failing.base_url(), good.base_url()]),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "switchboard-test"),
        ],
    )
    .await;
    let resp = http()
        .post(format!("{}/v1/chat/completions", router.api))
        .bearer_auth(CLIENT_KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({
            "model": "test/model", "stream": true, "max_tokens": 50, "temperature": 0.5,
            "messages": [{"role": "user", "content": PROMPT}]
        }))
        .send()
        .await
        .unwrap();
    let generation = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    let trace_id = hex::decode(TRACE_ID).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let ours = loop {
        let ours: Vec<Span> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        if ours.len() >= 3 || Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        ours.len(),
        3,
        "one server span and two attempt spans: {ours:#?}"
    );
    let server = ours
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert_eq!(
        server.parent_span_id,
        hex::decode(CLIENT_SPAN).unwrap(),
        "continues the client's trace"
    );
    assert_eq!(server.name, "chat test/model");
    assert_eq!(text(server, "gen_ai.operation.name"), "chat");
    assert_eq!(text(server, "gen_ai.request.model"), "test/model");
    assert_eq!(text(server, "gen_ai.provider.name"), "up1");
    assert_eq!(text(server, "gen_ai.response.model"), "m");
    assert_eq!(text(server, "gen_ai.response.id"), "chatcmpl-s1");
    assert_eq!(text(server, "gen_ai.response.finish_reasons"), "stop");
    assert_eq!(text(server, "gen_ai.request.max_tokens"), "50");
    assert_eq!(text(server, "gen_ai.request.temperature"), "0.5");
    assert_eq!(text(server, "gen_ai.usage.input_tokens"), "9");
    assert_eq!(text(server, "gen_ai.usage.output_tokens"), "3");
    assert_eq!(text(server, "switchboard.generation_id"), generation);
    assert_eq!(text(server, "switchboard.api_key"), "main");
    assert_eq!(text(server, "switchboard.fallbacks"), "1");
    assert_eq!(text(server, "switchboard.streamed"), "true");
    assert_eq!(text(server, "switchboard.cost_usd"), "0.00000315");

    let mut attempts: Vec<&Span> = ours
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        assert_eq!(
            a.parent_span_id, server.span_id,
            "attempts are children of the request span"
        );
        assert_eq!(text(a, "gen_ai.request.model"), "m");
    }
    assert_eq!(text(attempts[0], "gen_ai.provider.name"), "up0");
    assert_eq!(
        attempts[0].status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(text(attempts[0], "error.type"), "protocol");
    assert_eq!(text(attempts[1], "gen_ai.provider.name"), "up1");
    assert_ne!(
        attempts[1].status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );

    // Each provider got the trace context of its own attempt.
    for (upstream, attempt) in [(&failing, attempts[0]), (&good, attempts[1])] {
        let sent = upstream.received()[0].headers["traceparent"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            sent,
            format!("00-{TRACE_ID}-{}-01", hex::encode(&attempt.span_id))
        );
    }
    // No prompt content anywhere.
    let all = format!("{ours:?}");
    assert!(!all.contains(PROMPT), "prompt content was recorded");
    assert!(
        !all.contains(UPSTREAM_KEY) && !all.contains(CLIENT_KEY),
        "a key was recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn content_is_recorded_on_traces_only_when_asked_for() {
    let (endpoint, spans) = collector().await;
    let router = RouterProcess::spawn_with_env(
        &manifests(&[]),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("SWITCHBOARD_TRACE_CONTENT", "true"),
        ],
    )
    .await;
    let resp = http()
        .post(format!("{}/v1/chat/completions", router.api))
        .bearer_auth(CLIENT_KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({"model": "test/mock", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace_id = hex::decode(TRACE_ID).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let server = loop {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.trace_id == trace_id && s.kind == SpanKind::Server as i32)
            .cloned();
        if let Some(s) = found {
            break s;
        }
        assert!(Instant::now() < deadline, "no server span arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text(&server, "gen_ai.input.messages").contains(PROMPT));
    assert!(text(&server, "gen_ai.output.messages").contains(&format!("echo: {PROMPT}")));
}
