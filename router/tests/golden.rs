//! Golden tests of the pure translations: one input fixture, one expected output, as files under
//! `tests/golden/` (`<provider>/<case>.<kind>` next to `<case>.expected.<ext>`). One test per
//! pair. `created` timestamps are written as 0. To re-record after an intended change, run with
//! `SWITCHBOARD_UPDATE_GOLDEN=1` and review the diff.

use std::path::PathBuf;

use serde_json::Value;
use switchboard_router::{
    ingress::messages::translate as messages,
    json::RawObject,
    providers::{
        anthropic::translate as anthropic, bedrock::translate as bedrock,
        gemini::translate as gemini, openai_wire::ChatRequest, upstream::StreamTranslate,
    },
};

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn pretty(v: &Value) -> String {
    let mut v = v.clone();
    if v.get("created").is_some() {
        v["created"] = 0.into();
    }
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn check(expected: &str, got: String) {
    if std::env::var("SWITCHBOARD_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(path(expected), &got).unwrap();
        return;
    }
    let want = read(expected);
    assert!(
        want == got,
        "{expected} differs (SWITCHBOARD_UPDATE_GOLDEN=1 re-records):\n--- expected\n{want}\n--- got\n{got}"
    );
}

fn openai_request(rel: &str) -> ChatRequest {
    ChatRequest::parse(&RawObject::parse(read(rel).as_bytes()).unwrap()).unwrap()
}

/// SSE text as `(event, data)` pairs.
fn sse(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut event = String::new();
            let mut data = String::new();
            for l in f.lines() {
                if let Some(e) = l.strip_prefix("event: ") {
                    event = e.into();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data = d.into();
                }
            }
            (event, data)
        })
        .collect()
}

/// Runs events through a stream translator; one OpenAI payload per line.
fn run_stream(tr: &mut dyn StreamTranslate, events: Vec<(String, String)>) -> String {
    let mut out = Vec::new();
    for (e, d) in events {
        out.extend(tr.on_event(&e, &d).unwrap());
    }
    out.extend(tr.on_end());
    out.iter()
        .map(|p| match serde_json::from_str::<Value>(p) {
            Ok(mut v) => {
                if v.get("created").is_some() {
                    v["created"] = 0.into();
                }
                v.to_string()
            }
            Err(_) => p.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

// -------------------------------------------------------------------------------------------
// Anthropic

#[test]
fn anthropic_request_conversation() {
    let (body, _) = anthropic::request(
        &openai_request("conversation.openai.json"),
        anthropic::Dialect::Api("claude-sonnet-4-5"),
        None,
        false,
    )
    .unwrap();
    check("anthropic/conversation.expected.json", pretty(&body));
}

#[test]
fn anthropic_request_structured_output() {
    let (body, hints) = anthropic::request(
        &openai_request("structured.openai.json"),
        anthropic::Dialect::Vertex,
        Some(8192),
        true,
    )
    .unwrap();
    assert_eq!(hints.json_tool.as_deref(), Some("weather"));
    check("anthropic/structured.expected.json", pretty(&body));
}

#[test]
fn anthropic_response() {
    let c = anthropic::response(
        read("anthropic/response.upstream.json").as_bytes(),
        &anthropic::Hints::default(),
    )
    .unwrap();
    check(
        "anthropic/response.expected.json",
        pretty(&serde_json::from_str(&c.render()).unwrap()),
    );
}

#[test]
fn anthropic_stream() {
    let mut tr = anthropic::Stream::new(anthropic::Hints::default());
    check(
        "anthropic/stream.expected.jsonl",
        run_stream(&mut tr, sse(&read("anthropic/stream.upstream.sse"))),
    );
}

// -------------------------------------------------------------------------------------------
// Gemini

#[test]
fn gemini_request_conversation() {
    let (body, _) = gemini::request(&openai_request("conversation.openai.json")).unwrap();
    check("gemini/conversation.expected.json", pretty(&body));
}

#[test]
fn gemini_request_structured_output() {
    let (body, _) = gemini::request(&openai_request("structured.openai.json")).unwrap();
    check("gemini/structured.expected.json", pretty(&body));
}

#[test]
fn gemini_response() {
    let c = gemini::response(
        read("gemini/response.upstream.json").as_bytes(),
        &gemini::Hints::default(),
        "gemini-2.5-pro",
        "fixed",
    )
    .unwrap();
    check(
        "gemini/response.expected.json",
        pretty(&serde_json::from_str(&c.render()).unwrap()),
    );
}

#[test]
fn gemini_stream() {
    let mut tr = gemini::Stream::new(gemini::Hints::default(), "gemini-2.5-pro", "fixed");
    check(
        "gemini/stream.expected.jsonl",
        run_stream(&mut tr, sse(&read("gemini/stream.upstream.sse"))),
    );
}

// -------------------------------------------------------------------------------------------
// Bedrock

#[test]
fn bedrock_request_conversation() {
    let (body, _) = bedrock::request(&openai_request("conversation.openai.json"), None).unwrap();
    check("bedrock/conversation.expected.json", pretty(&body));
}

#[test]
fn bedrock_request_structured_output() {
    let (body, _) =
        bedrock::request(&openai_request("structured.openai.json"), Some(1000)).unwrap();
    check("bedrock/structured.expected.json", pretty(&body));
}

#[test]
fn bedrock_response() {
    let c = bedrock::response(
        read("bedrock/response.upstream.json").as_bytes(),
        &bedrock::Hints::default(),
        "anthropic.claude-sonnet-4-5-v1:0",
        "gen-fixed",
    )
    .unwrap();
    check(
        "bedrock/response.expected.json",
        pretty(&serde_json::from_str(&c.render()).unwrap()),
    );
}

#[test]
fn bedrock_stream() {
    let events = read("bedrock/stream.upstream.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_string(),
                v["data"].to_string(),
            )
        })
        .collect();
    let mut tr = bedrock::Stream::new(
        bedrock::Hints::default(),
        "anthropic.claude-sonnet-4-5-v1:0",
        "gen-fixed",
    );
    check("bedrock/stream.expected.jsonl", run_stream(&mut tr, events));
}

// -------------------------------------------------------------------------------------------
// /v1/messages ingress

#[test]
fn messages_request_conversation() {
    let body = RawObject::parse(read("messages/conversation.anthropic.json").as_bytes()).unwrap();
    let out = messages::request(&body).unwrap();
    let v: Value = serde_json::from_slice(&out.body.to_vec()).unwrap();
    check("messages/conversation.expected.json", pretty(&v));
}

#[test]
fn messages_response() {
    let v = messages::response(
        read("messages/response.openai.json").as_bytes(),
        "anthropic/claude-sonnet-4-5",
    )
    .unwrap();
    check(
        "messages/response.expected.json",
        pretty(&serde_json::from_str(&v).unwrap()),
    );
}

#[test]
fn messages_stream() {
    let mut tr = messages::Stream::new("anthropic/claude-sonnet-4-5");
    let mut buf = read("messages/stream.openai.sse");
    let out: Vec<u8> = switchboard_router::streaming::sse::take_payloads(&mut buf)
        .iter()
        .flat_map(|p| tr.on_payload(p))
        .flat_map(|b| b.to_vec())
        .collect();
    check(
        "messages/stream.expected.sse",
        String::from_utf8(out).unwrap(),
    );
}
